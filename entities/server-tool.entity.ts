import { Entity, Enum, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { McpServer } from './mcp-server.entity';
import { Organization } from './organization.entity';
import { ToolDefinition } from './tool-definition.entity';

export enum ServerToolStatus {
  NOT_INSTALLED = 'NOT_INSTALLED',
  INSTALLING = 'INSTALLING',
  INSTALLED = 'INSTALLED',
  REMOVING = 'REMOVING',
  FAILED = 'FAILED',
}

@Entity({ tableName: 'server_tools' })
@Unique({ properties: ['server', 'tool'] })
export class ServerTool extends BaseEntity<'status'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade', index: true })
  organization!: Organization;

  @ManyToOne(() => McpServer, { deleteRule: 'cascade' })
  server!: McpServer;

  @ManyToOne(() => ToolDefinition, { deleteRule: 'restrict', index: true })
  tool!: ToolDefinition;

  @Enum({ items: () => ServerToolStatus })
  status: ServerToolStatus = ServerToolStatus.NOT_INSTALLED;

  @Property({ type: 'string', length: 100, nullable: true })
  installedVersion?: string;

  @Property({ type: 'text', nullable: true })
  lastError?: string;

  @Property({ type: 'string', length: 200, nullable: true })
  workflowId?: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  installedAt?: Date;

  /** When the installed version was last verified on the server (install, uninstall, drift check). */
  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  checkedAt?: Date;

  /** The end of the server's log of the last install or uninstall. */
  @Property({ type: 'text', nullable: true })
  logTail?: string;
}
