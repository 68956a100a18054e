import { Entity, Enum, Index, ManyToOne, Property } from '@mikro-orm/core';
import { Agent } from './agent.entity';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { User } from './user.entity';

export enum TaskKind {
  PROMPT = 'prompt',
  TOOL = 'tool',
}

export enum AssignmentMode {
  MANUAL = 'MANUAL',
  AUTO = 'AUTO',
  BY_CAPABILITY = 'BY_CAPABILITY',
}

export enum ExecutionMode {
  IMMEDIATE = 'IMMEDIATE',
  SCHEDULED = 'SCHEDULED',
  RECURRING = 'RECURRING',
}

/** Mirrors Temporal's ScheduleOverlapPolicy names. */
export enum OverlapPolicy {
  SKIP = 'SKIP',
  BUFFER_ONE = 'BUFFER_ONE',
  BUFFER_ALL = 'BUFFER_ALL',
  CANCEL_OTHER = 'CANCEL_OTHER',
  TERMINATE_OTHER = 'TERMINATE_OTHER',
  ALLOW_ALL = 'ALLOW_ALL',
}

export enum TaskPriority {
  LOW = 'LOW',
  NORMAL = 'NORMAL',
  HIGH = 'HIGH',
  URGENT = 'URGENT',
}

@Entity({ tableName: 'tasks' })
// A list filtered by mode or by enabled reads its page straight from the index, in page order.
@Index({ properties: ['organization', 'enabled', 'createdAt'] })
@Index({ properties: ['organization', 'executionMode', 'createdAt'] })
@Index({ properties: ['organization', 'createdAt'] })
export class Task extends BaseEntity<
  | 'kind'
  | 'priority'
  | 'assignmentMode'
  | 'executionMode'
  | 'timezone'
  | 'overlapPolicy'
  | 'maxRetries'
  | 'enabled'
  | 'runCount'
  | 'requiredCapabilities'
  | 'promptVariables'
> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @Property({ type: 'string', length: 200 })
  title!: string;

  @Property({ type: 'text', nullable: true })
  description?: string;

  @Enum({ items: () => TaskKind })
  kind: TaskKind = TaskKind.PROMPT;

  @Property({ type: 'text', nullable: true })
  prompt?: string;

  @Property({ type: 'json', default: '{}' })
  promptVariables: Record<string, string> = {};

  @Property({ type: 'string', length: 200, nullable: true })
  toolName?: string;

  @Property({ type: 'json', nullable: true })
  toolArguments?: Record<string, unknown>;

  @Enum({ items: () => TaskPriority })
  priority: TaskPriority = TaskPriority.NORMAL;

  @Enum({ items: () => AssignmentMode })
  assignmentMode: AssignmentMode = AssignmentMode.MANUAL;

  @ManyToOne(() => Agent, { nullable: true, deleteRule: 'set null', index: true })
  agent?: Agent;

  @Property({ type: 'text[]', default: '{}' })
  requiredCapabilities: string[] = [];

  @Enum({ items: () => ExecutionMode })
  executionMode: ExecutionMode = ExecutionMode.IMMEDIATE;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  scheduledAt?: Date;

  @Property({ type: 'string', length: 120, nullable: true })
  cronExpression?: string;

  @Property({ type: 'string', length: 64, default: 'UTC' })
  timezone: string = 'UTC';

  @Enum({ items: () => OverlapPolicy })
  overlapPolicy: OverlapPolicy = OverlapPolicy.SKIP;

  @Property({ type: 'integer', nullable: true })
  timeoutMs?: number;

  @Property({ type: 'integer', default: 0 })
  maxRetries: number = 0;

  @Property({ type: 'boolean', default: true })
  enabled: boolean = true;

  /** Since when the task is disabled: on resume, the occurrences its schedule missed meanwhile are recorded SKIPPED. */
  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  pausedAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  lastRunAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  nextRunAt?: Date;

  @Property({ type: 'integer', default: 0 })
  runCount: number = 0;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  createdBy?: User;

  /**
   * Set when the task is deleted: the row stays so that its runs keep their `taskId` (history
   * stays readable through `/api/executions?taskId=`), and every task route answers 404.
   */
  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  deletedAt?: Date;
}
