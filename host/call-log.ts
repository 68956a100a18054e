/**
 * What the reference host has received and what it is running: the `tools/call` and `tasks/*` requests, the
 * cancellations of execute_prompt and the calls still in flight. Tests read and wait on it to
 * see the host from the other side of the wire; close() waits for the calls in flight.
 */
import { isJSONRPCRequest, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { CallIo } from './tool-types';

// A ceiling for tests on a loaded machine, not an expectation.
const DEFAULT_WAIT_MS = 60_000;

export interface ReceivedCall {
  tool: string;
  args: Record<string, unknown>;
  at: number;
  requestId: string | number;
}

/** A tasks/* request received (tasks/get, tasks/result, tasks/list, tasks/cancel). */
export interface TaskRequest {
  method: string;
  taskId?: string;
  at: number;
  requestId: string | number;
  sessionId?: string;
}

export interface Cancellation {
  requestId: string | number;
  executionId?: string;
  at: number;
}

interface Waiter {
  /** Resolves the waiter if what it waits for is there now; says whether it did. */
  settle(): boolean;
  reject(error: Error): void;
}

export class CallLog {
  /** Every tools/call received (on a valid session), in arrival order, before validation. */
  readonly calls: ReceivedCall[] = [];
  /** Aborts of a running execute_prompt (client cancellation, or its session ending). */
  readonly cancellations: Cancellation[] = [];
  /** Every tasks/* request received (on a valid session), in arrival order. */
  readonly taskRequests: TaskRequest[] = [];
  private readonly background = new Set<Promise<unknown>>();
  private readonly inflight = new Set<Promise<CallToolResult>>();
  private readonly waiters = new Set<Waiter>();
  private closed = false;

  /** execute_prompt calls currently running. */
  get running(): number {
    return this.inflight.size;
  }

  /** Records the tools/call and tasks/* requests of a JSON-RPC body (a message or a batch). */
  recordCalls(body: unknown, sessionId?: string): void {
    for (const message of Array.isArray(body) ? body : [body]) {
      if (!isJSONRPCRequest(message)) continue;
      if (message.method.startsWith('tasks/')) {
        const taskId = (message.params as { taskId?: unknown } | undefined)?.taskId;
        this.taskRequests.push({
          method: message.method,
          ...(typeof taskId === 'string' ? { taskId } : {}),
          at: Date.now(),
          requestId: message.id,
          ...(sessionId !== undefined ? { sessionId } : {}),
        });
        continue;
      }
      if (message.method !== 'tools/call') continue;
      const params = message.params as { name?: unknown; arguments?: unknown } | undefined;
      const args = params?.arguments;
      this.calls.push({
        tool: typeof params?.name === 'string' ? params.name : '',
        args: typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {},
        at: Date.now(),
        requestId: message.id,
      });
    }
    this.notifyWaiters();
  }

  /** Runs an execute_prompt call, counted while it runs and recorded if its request aborts. */
  async trackPrompt(executionId: string, io: CallIo, run: () => Promise<CallToolResult>): Promise<CallToolResult> {
    const onAbort = () => {
      this.cancellations.push({ requestId: io.requestId, executionId, at: Date.now() });
      this.notifyWaiters();
    };
    io.signal.addEventListener('abort', onAbort, { once: true });
    const call = run();
    this.inflight.add(call);
    try {
      return await call;
    } finally {
      this.inflight.delete(call);
      io.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Keeps a task's background run until it ends, for settled(). */
  trackBackground(run: Promise<unknown>): void {
    this.background.add(run);
    void run.finally(() => this.background.delete(run));
  }

  waitForTaskRequest(method: string, predicate?: (r: TaskRequest) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<TaskRequest> {
    return this.waitFor(
      () => this.taskRequests.find((r) => r.method === method && (predicate?.(r) ?? true)),
      timeoutMs,
      `a ${method} request`,
    );
  }

  /** Settles once every call running now has ended (they end with an error result on shutdown). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inflight, ...this.background]);
  }

  waitForCall(tool: string, predicate?: (c: ReceivedCall) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<ReceivedCall> {
    return this.waitFor(() => this.calls.find((c) => c.tool === tool && (predicate?.(c) ?? true)), timeoutMs, `a ${tool} call`);
  }

  async waitForCancellation(executionId: string, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    await this.waitFor(
      () => this.cancellations.find((c) => c.executionId === executionId),
      timeoutMs,
      `the cancellation of ${executionId}`,
    );
  }

  /** Fails every wait, now and later: what they wait for will not come from a closed host. */
  close(): void {
    this.closed = true;
    for (const waiter of this.waiters) waiter.reject(new Error('agent host closed'));
    this.waiters.clear();
  }

  private notifyWaiters(): void {
    for (const waiter of [...this.waiters]) {
      if (waiter.settle()) this.waiters.delete(waiter);
    }
  }

  private waitFor<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    if (this.closed) return Promise.reject(new Error(`agent host closed while waiting for ${what}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        settle: () => {
          const value = find();
          if (value === undefined) return false;
          clearTimeout(timer);
          resolve(value);
          return true;
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.waiters.add(waiter);
    });
  }
}
