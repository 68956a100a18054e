import { randomUUID } from 'node:crypto';
import { Entity, Enum, ManyToOne, OptionalProps, PrimaryKey, Property, Unique } from '@mikro-orm/core';
import { Execution } from './execution.entity';
import { Organization } from './organization.entity';

export enum ExecutionEventType {
  STATUS = 'status',
  OUTPUT = 'output',
  PROGRESS = 'progress',
  TODO = 'todo',
  TOOL_CALL = 'tool_call',
  TOOL_RESULT = 'tool_result',
  FILE_CHANGE = 'file_change',
  /** The host asked a question (`input: {inputId, message, requestedSchema, expiresAt}`). */
  INPUT_REQUIRED = 'input_required',
  /** A person answered it (`input: {inputId, action, answeredBy}`; the content stays out of the log). */
  INPUT_ANSWERED = 'input_answered',
  /** A delegation: in a parent's log a child started or ended, in a child's log who delegated it (`data`). */
  DELEGATION = 'delegation',
}

/** Append-only replay log behind SSE and Socket.IO; `seq` is gapless per execution. */
@Entity({ tableName: 'execution_events' })
@Unique({ properties: ['execution', 'seq'] })
export class ExecutionEvent {
  [OptionalProps]?: 'createdAt' | 'attempt';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Execution, { deleteRule: 'cascade' })
  execution!: Execution;

  @ManyToOne(() => Organization, { deleteRule: 'cascade', index: true })
  organization!: Organization;

  @Property({ type: 'integer' })
  seq!: number;

  @Enum({ items: () => ExecutionEventType })
  type!: ExecutionEventType;

  @Property({ type: 'integer', default: 1 })
  attempt: number = 1;

  @Property({ type: 'json' })
  payload!: Record<string, unknown>;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  createdAt: Date = new Date();
}
