import { Entity, Enum, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { Agent } from './agent.entity';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { Task } from './task.entity';
import { User } from './user.entity';

export enum ExecutionTrigger {
  MANUAL = 'manual',
  API = 'api',
  SCHEDULE = 'schedule',
  MASTER = 'master',
  RETRY = 'retry',
  /** Started by another run's agent through `delegate` (a child run of `parentExecution`). */
  DELEGATION = 'delegation',
}

export enum ExecutionStatus {
  QUEUED = 'QUEUED',
  RUNNING = 'RUNNING',
  /**
   * The host asked a person something (an input request, domain/runs/inputs.ts) and the run
   * waits for the answer. Not final, and it keeps its slot.
   */
  WAITING_INPUT = 'WAITING_INPUT',
  COMPLETED = 'COMPLETED',
  FAILED = 'FAILED',
  CANCELLED = 'CANCELLED',
  TIMED_OUT = 'TIMED_OUT',
  /** A task occurrence that did not run (overlap policy, no eligible agent, ...): `error` says why. */
  SKIPPED = 'SKIPPED',
}

export const FINAL_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  ExecutionStatus.COMPLETED,
  ExecutionStatus.FAILED,
  ExecutionStatus.CANCELLED,
  ExecutionStatus.TIMED_OUT,
  ExecutionStatus.SKIPPED,
];

/** The runs that hold one of their agent's slots: counted against `maxConcurrency`. */
export const SLOT_HOLDING_STATUSES: readonly ExecutionStatus[] = [ExecutionStatus.RUNNING, ExecutionStatus.WAITING_INPUT];

/** The runs not yet ended: queued, running, or waiting for an answer. */
export const LIVE_EXECUTION_STATUSES: readonly ExecutionStatus[] = [ExecutionStatus.QUEUED, ...SLOT_HOLDING_STATUSES];

export interface TodoItem {
  id: string;
  content: string;
  status: 'pending' | 'in_progress' | 'completed';
}

@Entity({ tableName: 'executions' })
@Index({ properties: ['organization', 'status', 'createdAt'] })
@Index({ properties: ['organization', 'createdAt'] })
@Index({ properties: ['agent', 'status', 'createdAt'] })
@Index({ properties: ['task', 'createdAt'] })
// A retried `delegate` (the same workflow Update, replayed after a lost worker) finds the child it made.
@Unique({ properties: ['parentExecution', 'delegationKey'] })
export class Execution extends BaseEntity<'status' | 'todos' | 'attempt' | 'runMsUsed' | 'depth'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  /** Null once the agent is deleted: the run history stays. */
  @ManyToOne(() => Agent, { nullable: true, deleteRule: 'set null' })
  agent?: Agent;

  @ManyToOne(() => Task, { nullable: true, deleteRule: 'set null' })
  task?: Task;

  @Enum({ items: () => ExecutionTrigger })
  trigger!: ExecutionTrigger;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  triggeredBy?: User;

  @Enum({ items: () => ExecutionStatus })
  status: ExecutionStatus = ExecutionStatus.QUEUED;

  @Property({ type: 'text', nullable: true })
  prompt?: string;

  @Property({ type: 'json', nullable: true })
  context?: Record<string, unknown>;

  @Property({ type: 'text', nullable: true })
  output?: string;

  @Property({ type: 'json', nullable: true })
  result?: Record<string, unknown>;

  @Property({ type: 'text', nullable: true })
  error?: string;

  @Property({ type: 'integer', nullable: true })
  tokensUsed?: number;

  @Property({ type: 'json', default: '[]' })
  todos: TodoItem[] = [];

  /** Activity attempt that last wrote to this execution (retries after a worker crash bump it). */
  @Property({ type: 'integer', default: 1 })
  attempt: number = 1;

  @Unique()
  @Property({ type: 'string', length: 200, nullable: true })
  workflowId?: string;

  @Property({ type: 'string', length: 64, nullable: true })
  runId?: string;

  /**
   * The OpenTelemetry trace the run belongs to (32 hex digits), when tracing was on as the row was
   * written: the API request's for a run started by hand, the task run's for a Schedule's
   * occurrence (docs/tracing.md). An operator jumps from the run to its trace with it.
   */
  @Property({ type: 'string', length: 32, nullable: true })
  traceId?: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  startedAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  completedAt?: Date;

  @Property({ type: 'integer', nullable: true })
  durationMs?: number;

  /** For a task's run: which agent was chosen and why ("3 candidates; chose X: 0 running, ONLINE 12 ms"). */
  @Property({ type: 'text', nullable: true })
  assignmentReason?: string;

  /** The run this one retries (a task's FAILED or TIMED_OUT attempt), so attempts link up. */
  @ManyToOne(() => Execution, { nullable: true, deleteRule: 'set null', index: true })
  retryOf?: Execution;

  /** For a task's occurrence: the time the schedule meant it to start. */
  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  scheduledFor?: Date;

  /** For a `kind: tool` task's run: the tool called on the agent's server, and its arguments. */
  @Property({ type: 'string', length: 200, nullable: true })
  toolName?: string;

  @Property({ type: 'json', nullable: true })
  toolArguments?: Record<string, unknown>;

  /**
   * For a task's run: the `taskRun` workflow of its occurrence, which owns it (waits for the
   * overlap policy, applies the timeout, retries): cancelling the run cancels that workflow.
   * Indexed: the worker's run metrics find a taskRun's run by it (worker/metrics.ts).
   */
  @Index()
  @Property({ type: 'string', length: 200, nullable: true })
  taskRunWorkflowId?: string;

  /**
   * The MCP task id of a task-backed run (a server that runs execute_prompt as a task),
   * recorded before the activity waits on it: a new attempt re-attaches to this task instead of
   * sending execute_prompt again.
   */
  @Property({ type: 'string', length: 200, nullable: true })
  mcpTaskId?: string;

  /**
   * How long an input request of this run waits for its answer before the run ends TIMED_OUT;
   * null: the configured default (`INPUT_TIMEOUT_MS`, 24 h).
   */
  @Property({ type: 'integer', nullable: true })
  inputTimeoutMs?: number;

  /**
   * Running time used so far, in ms, recorded when the run starts waiting for input: waits do
   * not count against the run's time limit, so a resumed segment gets what is left.
   */
  @Property({ type: 'integer', default: 0 })
  runMsUsed: number = 0;

  /** For a delegated run: the run whose agent delegated it (its Temporal parent workflow). */
  @ManyToOne(() => Execution, { nullable: true, deleteRule: 'set null', index: true })
  parentExecution?: Execution;

  /** How many delegations above this run: 0 for a run started otherwise, at most 3 (domain/runs/delegation.ts). */
  @Property({ type: 'smallint', default: 0 })
  depth: number = 0;

  /** For a delegated run: the id of the parent's `delegate` Update that made it, unique per parent. */
  @Property({ type: 'string', length: 200, nullable: true })
  delegationKey?: string;
}
