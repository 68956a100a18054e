import { Entity, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { Agent } from './agent.entity';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { ToolDefinition } from './tool-definition.entity';
import { User } from './user.entity';

/** What one agent may do with one tool; a subordinate never holds a tool its supervisor lacks. */
@Entity({ tableName: 'agent_tool_permissions' })
@Unique({ properties: ['agent', 'tool'] })
export class AgentToolPermission extends BaseEntity<'canUse' | 'allowedCommands' | 'blockedCommands' | 'requiresApproval'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade', index: true })
  organization!: Organization;

  @ManyToOne(() => Agent, { deleteRule: 'cascade' })
  agent!: Agent;

  @ManyToOne(() => ToolDefinition, { deleteRule: 'cascade', index: true })
  tool!: ToolDefinition;

  @Property({ type: 'boolean', default: true })
  canUse: boolean = true;

  @Property({ type: 'text[]', default: '{}' })
  allowedCommands: string[] = [];

  @Property({ type: 'text[]', default: '{}' })
  blockedCommands: string[] = [];

  /** The host asks a person (an input request) before each command of this tool, and runs it only when approved. */
  @Property({ type: 'boolean', default: false })
  requiresApproval: boolean = false;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  grantedBy?: User;
}
