import { randomUUID } from 'node:crypto';
import { Entity, Enum, Index, ManyToOne, OptionalProps, PrimaryKey, Property, Unique } from '@mikro-orm/core';
import { Execution } from './execution.entity';
import { Organization } from './organization.entity';
import { User } from './user.entity';

export enum ExecutionInputStatus {
  /** Asked, not answered yet: at most one per execution. */
  PENDING = 'PENDING',
  /** A person answered; the answer has not reached the host yet. */
  ANSWERED = 'ANSWERED',
  /** The answer reached the host. */
  DELIVERED = 'DELIVERED',
  /** Nobody answered within the run's input timeout. */
  EXPIRED = 'EXPIRED',
  /** The run ended, or the question was lost with the worker that held it. */
  CANCELLED = 'CANCELLED',
}

export type InputAction = 'accept' | 'decline' | 'cancel';

/**
 * A question a host asked during a run (MCP elicitation, form mode), and its answer. The row
 * is the authority on whether it was answered: the API answers it with a compare-and-set, the
 * workflow and the activity read it.
 */
@Entity({ tableName: 'execution_inputs' })
// A question repeated after its answer was delivered is a new question (an approval asked
// again for the same command must not reuse the last answer): the key is unique only among
// the open ones, which is what a host's re-send of a still-open question maps to.
@Unique({
  name: 'execution_inputs_open_request_key',
  expression: `create unique index "execution_inputs_open_request_key" on "execution_inputs" ("execution_id", "request_key") where "status" in ('PENDING', 'ANSWERED')`,
})
@Unique({
  name: 'execution_inputs_one_pending',
  expression: `create unique index "execution_inputs_one_pending" on "execution_inputs" ("execution_id") where "status" = 'PENDING'`,
})
@Index({ properties: ['organization', 'status'] })
@Index({ properties: ['execution', 'createdAt'] })
export class ExecutionInput {
  [OptionalProps]?: 'createdAt' | 'status';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @ManyToOne(() => Execution, { deleteRule: 'cascade' })
  execution!: Execution;

  /** The MCP task the question came through (a task-backed run); absent for a plain call. */
  @Property({ type: 'string', length: 200, nullable: true })
  taskId?: string;

  /**
   * The question's identity within its execution: the task id and a hash of the message and
   * schema. A host asks the same question again on every new `tasks/result`; it maps to this row.
   */
  @Property({ type: 'string', length: 300 })
  requestKey!: string;

  @Property({ type: 'text' })
  message!: string;

  @Property({ type: 'json' })
  requestedSchema!: Record<string, unknown>;

  @Enum({ items: () => ExecutionInputStatus })
  status: ExecutionInputStatus = ExecutionInputStatus.PENDING;

  @Property({ type: 'string', length: 10, nullable: true })
  action?: InputAction;

  @Property({ type: 'json', nullable: true })
  content?: Record<string, unknown>;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  answeredBy?: User;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  answeredAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  expiresAt!: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  createdAt: Date = new Date();
}
