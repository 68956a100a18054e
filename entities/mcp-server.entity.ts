import { Entity, Enum, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { User } from './user.entity';

export enum ServerStatus {
  ONLINE = 'ONLINE',
  OFFLINE = 'OFFLINE',
  DEGRADED = 'DEGRADED',
  UNKNOWN = 'UNKNOWN',
}

export enum McpTransport {
  STREAMABLE_HTTP = 'streamable-http',
  SSE = 'sse',
}

export interface ToolSnapshotEntry {
  name: string;
  description?: string;
  inputSchema?: unknown;
  /** The tool's `_meta` in tools/list (not part of the tools hash): where a host says whether it sandboxes commands. */
  meta?: Record<string, unknown>;
}

export interface ToolsChange {
  at: string;
  added: string[];
  removed: string[];
  changed: string[];
}

@Entity({ tableName: 'mcp_servers' })
@Unique({ properties: ['organization', 'name'] })
@Index({ properties: ['organization', 'status'] })
export class McpServer extends BaseEntity<'status' | 'transport'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @Property({ type: 'string', length: 100 })
  name!: string;

  @Property({ type: 'text', nullable: true })
  description?: string;

  @Property({ type: 'string', length: 2048 })
  url!: string;

  @Enum({ items: () => McpTransport })
  transport: McpTransport = McpTransport.STREAMABLE_HTTP;

  /** AES-256-GCM envelope (iv, tag, ciphertext); never presented, never logged. */
  @Property({ type: 'text', hidden: true, lazy: true })
  masterTokenCiphertext!: string;

  /** Id of the key-ring entry that encrypted the token, so rotation can find stale rows. */
  @Index()
  @Property({ type: 'string', length: 32 })
  masterTokenKeyId!: string;

  @Property({ type: 'string', length: 4, nullable: true })
  masterTokenLast4?: string;

  @Enum({ items: () => ServerStatus })
  status: ServerStatus = ServerStatus.UNKNOWN;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  lastCheckAt?: Date;

  @Property({ type: 'integer', nullable: true })
  lastLatencyMs?: number;

  @Property({ type: 'text', nullable: true })
  lastError?: string;

  @Property({ type: 'json', nullable: true })
  serverInfo?: { name: string; version: string; [key: string]: unknown };

  @Property({ type: 'string', length: 32, nullable: true })
  protocolVersion?: string;

  @Property({ type: 'json', nullable: true })
  toolsSnapshot?: ToolSnapshotEntry[];

  @Property({ type: 'string', length: 64, nullable: true })
  toolsHash?: string;

  @Property({ type: 'json', nullable: true })
  lastToolsChange?: ToolsChange;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  createdBy?: User;
}
