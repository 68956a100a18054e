import type { Execution } from '../entities';
import type { McpConnection } from '../lib/mcp-client';
import { listening, type PromptAttempt } from './prompt-run';
import type { PromptStream } from './prompt-stream';

/** One attempt's listeners: where the host's messages and questions for the run go. */
function attemptListening() {
  const messages: unknown[] = [];
  const stream = { message: (data: Record<string, unknown>) => void messages.push(data) } as unknown as PromptStream;
  const answerer: PromptAttempt['answerer'] = () => Promise.resolve({ action: 'cancel' });
  return { attempt: { stream, answerer }, messages };
}

describe("an attempt's listeners on a pooled connection", () => {
  it('an attempt Temporal gave up on, ending after the next one started, leaves the next one its listeners', async () => {
    const connection: Pick<McpConnection, 'messageListeners' | 'inputListeners'> = {
      messageListeners: new Map(),
      inputListeners: new Map(),
    };
    const run = { execution: { id: 'execution-1' } as Execution, mcpTaskId: 'task-1' };
    const abandoned = attemptListening();
    const next = attemptListening();

    let endAbandoned!: () => void;
    const first = listening(connection, run, abandoned.attempt, () => new Promise<void>((resolve) => (endAbandoned = resolve)));
    let endNext!: () => void;
    const second = listening(connection, run, next.attempt, () => new Promise<void>((resolve) => (endNext = resolve)));
    connection.inputListeners.set('task-1', next.attempt.answerer);
    endAbandoned();
    await first;

    // What the host sends for the run now reaches the attempt that follows it.
    connection.messageListeners.get('execution-1')?.({ type: 'output', text: 'chunk 1\n' }, 'info');
    expect(next.messages).toEqual([{ type: 'output', text: 'chunk 1\n' }]);
    expect(abandoned.messages).toEqual([]);
    expect(connection.inputListeners.get('execution-1')).toBe(next.attempt.answerer);
    expect(connection.inputListeners.get('task-1')).toBe(next.attempt.answerer);

    endNext();
    await second;
    expect(connection.messageListeners.size + connection.inputListeners.size).toBe(0);
  });
});
