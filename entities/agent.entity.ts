import { Entity, Enum, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { McpServer } from './mcp-server.entity';
import { Organization } from './organization.entity';
import { User } from './user.entity';

export enum AgentRole {
  MASTER = 'MASTER',
  SUPERVISOR = 'SUPERVISOR',
  WORKER = 'WORKER',
}

export enum AgentStatus {
  PENDING_VALIDATION = 'PENDING_VALIDATION',
  ACTIVE = 'ACTIVE',
  INACTIVE = 'INACTIVE',
  BUSY = 'BUSY',
  /** Nothing of it runs, and at least one of its runs waits for a person's answer (it still takes new runs). */
  WAITING_INPUT = 'WAITING_INPUT',
  ERROR = 'ERROR',
}

@Entity({ tableName: 'agents' })
@Unique({ properties: ['server', 'name'] })
@Index({ properties: ['organization', 'status'] })
@Index({ properties: ['organization', 'role'] })
@Index({ name: 'agents_capabilities_gin', expression: 'create index "agents_capabilities_gin" on "agents" using gin ("capabilities")' })
export class Agent extends BaseEntity<'status' | 'capabilities' | 'maxConcurrency'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @ManyToOne(() => McpServer, { deleteRule: 'cascade' })
  server!: McpServer;

  @Property({ type: 'string', length: 100 })
  name!: string;

  @Property({ type: 'string', length: 200 })
  displayName!: string;

  @Property({ type: 'text', nullable: true })
  description?: string;

  @Enum({ items: () => AgentRole })
  role!: AgentRole;

  @Enum({ items: () => AgentStatus })
  status: AgentStatus = AgentStatus.PENDING_VALIDATION;

  /** Same server only, never a cycle (enforced by the agents service). */
  @ManyToOne(() => Agent, { nullable: true, deleteRule: 'set null', index: true })
  supervisor?: Agent;

  @Property({ type: 'text[]', default: '{}' })
  capabilities: string[] = [];

  @Property({ type: 'integer', default: 1 })
  maxConcurrency: number = 1;

  @Property({ type: 'text', nullable: true })
  lastError?: string;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  createdBy?: User;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  validatedBy?: User;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  validatedAt?: Date;
}
