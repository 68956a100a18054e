import type { Client } from '@temporalio/client';
import { Execution, ExecutionStatus, type TodoItem } from '../entities';
import type { ExecutionLog } from '../domain/runs/execution-log';
import { GrowingThrottle } from '../domain/runs/progress-throttle';
import type { AgentExecutionPayload } from '../domain/events';
import { signalProgress } from '../domain/temporal';
import { parseHostMessage, type HostMessage } from '../lib/host-contract';
import { retryWhileDatabaseUnavailable } from '../lib/database-unavailable';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';
import { storable, storableText } from '../lib/pg-text';
import type { ProgressSnapshot } from '../workflows/contracts/agent-execution';

const OUTPUT_TAIL = 2000;

export interface PromptStreamDeps {
  orm: Orm;
  logger: Logger;
  temporalClient: Client;
  /** Called with the last written seq after every event (the activity's heartbeat). */
  heartbeat: (seq: number) => void;
  /** Called once, with the first event that could not be recorded: the run stops and the activity fails. */
  onUnrecorded: (error: unknown) => void;
}

/**
 * What a running prompt streams. Each host message and progress notification becomes one event
 * of the log; the output and the todo list follow; the workflow hears of it through `progress`
 * signals on a growing interval (progress-throttle.ts), the last one from `finish()`.
 *
 * An event is never dropped: one that cannot be recorded (after the log's own retries) is
 * reported to `onUnrecorded`, and the log's `flush()` rejects with it, so the activity fails and
 * Temporal tries it again rather than finish a run whose log lacks it.
 */
export class PromptStream {
  output = '';
  readonly state: ProgressSnapshot;
  private readonly throttle: GrowingThrottle;
  private unrecorded = false;
  /** The row's copy of the todo list, written one after the other so the latest stays. */
  private todosSaved: Promise<void> = Promise.resolve();

  constructor(
    private readonly log: ExecutionLog,
    private readonly deps: PromptStreamDeps,
    todos: TodoItem[],
  ) {
    this.state = { status: ExecutionStatus.RUNNING, todos, outputTail: '', seq: 0 };
    this.throttle = new GrowingThrottle(() =>
      signalProgress({ client: deps.temporalClient }, this.executionId, { ...this.state }).catch((error: unknown) =>
        deps.logger.debug({ err: error, executionId: this.executionId }, 'progress signal not delivered'),
      ),
    );
  }

  get executionId(): string {
    return this.log.execution.id;
  }

  /** How many progress signals went to the workflow. */
  get signals(): number {
    return this.throttle.sent;
  }

  /** A `notifications/message` for this run; one the contract does not know (type or shape) is dropped. */
  readonly message = (data: Record<string, unknown>): void => {
    const message = parseHostMessage(storable(data));
    if (!message) {
      this.deps.logger.debug({ executionId: this.executionId, type: data.type }, 'ignored host message of unknown type or shape');
      return;
    }
    this.track(this.record(message), 'could not record an execution event');
  };

  /** A `notifications/progress` for this run's call. */
  readonly progress = (p: { progress: number; total?: number; message?: string }): void => {
    const message = p.message === undefined ? undefined : storableText(p.message);
    this.track(this.log.append('progress', { progress: { progress: p.progress, total: p.total, message } }), 'could not record progress');
  };

  /** Sends the state the workflow has not heard yet, and the todo list to the row; resolves when both are done. */
  async finish(): Promise<void> {
    await Promise.all([this.throttle.finish(), this.todosSaved]);
  }

  /**
   * The run's output and todo list on its row, with what else the attempt's end records: every
   * way an attempt ends writes them through here.
   */
  async save(also: Partial<Pick<Execution, 'output' | 'tokensUsed' | 'result' | 'runMsUsed'>> = {}): Promise<void> {
    // Like the log's events, the answer waits for PostgreSQL to come back rather than fail a run
    // the host has finished (an update of the same values is safe to repeat).
    await retryWhileDatabaseUnavailable(
      () =>
        this.deps.orm.em
          .fork()
          .nativeUpdate(Execution, { id: this.executionId }, { output: this.output || undefined, todos: this.state.todos, ...also }),
      this.log.graceMs,
    );
  }

  private record(message: HostMessage): Promise<AgentExecutionPayload> {
    switch (message.type) {
      case 'output':
        this.output += message.text;
        this.state.outputTail = this.output.slice(-OUTPUT_TAIL);
        return this.log.append('output', { output: message.text });
      case 'todo':
        this.state.todos = message.todos;
        this.saveTodos(message.todos);
        return this.log.append('todo', { data: { todos: message.todos } });
      case 'tool_call':
        return this.log.append('tool_call', {
          toolCall: { toolCallId: message.toolCallId, name: message.name, arguments: message.arguments },
        });
      case 'tool_result':
        return this.log.append('tool_result', { toolCall: { toolCallId: message.toolCallId, name: message.name, result: message.result } });
      case 'file_change':
        return this.log.append('file_change', { data: { path: message.path, change: message.change } });
    }
  }

  /**
   * The list on the run's row, for GET /api/executions/:id while it runs. The log's `todo` event
   * is the record, and the run's end writes the list again, so a failed write is only logged; a
   * write waits while a question's transaction holds the row (it holds nothing the other waits for).
   */
  private saveTodos(todos: TodoItem[]): void {
    this.todosSaved = this.todosSaved
      .then(async () => {
        await this.deps.orm.em.fork().nativeUpdate(Execution, { id: this.executionId }, { todos });
      })
      .catch((error: unknown) =>
        this.deps.logger.warn({ err: error, executionId: this.executionId }, 'could not save the todo list on the run'),
      );
  }

  private track(written: Promise<AgentExecutionPayload>, failure: string): void {
    void written.then(
      (event) => {
        this.state.seq = Math.max(this.state.seq, event.seq);
        this.deps.heartbeat(this.state.seq);
        this.throttle.changed();
      },
      (error: unknown) => {
        this.deps.logger.error({ err: error, executionId: this.executionId }, failure);
        if (this.unrecorded) return;
        this.unrecorded = true;
        this.deps.onUnrecorded(error);
      },
    );
  }
}
