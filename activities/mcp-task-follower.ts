import { McpError, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { McpConnection, ProgressListener } from '../lib/mcp-client';
import { cancelMcpTask, getMcpTask, getMcpTaskResult, isMcpTaskNotFound, TERMINAL_MCP_TASK_STATUSES } from '../lib/mcp-tasks';
import { AttemptAbandoned } from './run-control';

/** The server does not know the task any more: whatever the run did, its outcome cannot be learnt. */
export class McpTaskForgotten extends Error {
  override name = 'McpTaskForgotten';
  constructor(readonly mcpTaskId: string) {
    super(`the server no longer knows task ${mcpTaskId} (expired, or the host restarted); the run's outcome is unknown`);
  }
}

/** The task ended `cancelled` without mcp-fleet asking. */
export class McpTaskCancelledByServer extends Error {
  override name = 'McpTaskCancelledByServer';
  constructor() {
    super('the server cancelled the task');
  }
}

/** Following stopped on purpose (`pause`): the task goes on at the host, nothing is cancelled. */
export class FollowPaused extends Error {
  override name = 'FollowPaused';
  constructor() {
    super('stopped following the task: it waits for an answer');
  }
}

export interface FollowOptions {
  connection: McpConnection;
  mcpTaskId: string;
  /** Aborted when the run is cancelled: the task is then cancelled on the server too (best effort). */
  signal: AbortSignal;
  /** Aborted to stop following without cancelling (the task waits for a person's answer). */
  pause?: AbortSignal;
  /** When the run's time is up (epoch ms). */
  deadline: number;
  /** Timeout of one short request (tasks/get, tasks/cancel). */
  requestTimeoutMs: number;
  /** The progress of the task's notifications (messages route by execution id, as for plain calls). */
  onProgress: ProgressListener;
  /** Extra key the task's progress may carry instead of the related-task meta (the progress token). */
  progressToken?: string;
  /** Liveness poll interval; default max(the task's pollInterval, 5 s). */
  pollMs?: number;
  /** How long a poll that sees the task terminal waits for `tasks/result` to return before asking again. */
  graceMs?: number;
  /** Told each time `tasks/result` is asked again, with why (the log's re-attach event). */
  onResume?: (reason: string) => Promise<unknown>;
}

/** An SDK error that means the SSE stream of a pending request is gone, leaving the request hanging. */
function isStreamLoss(error: Error): boolean {
  return /SSE stream disconnected|Failed to reconnect SSE stream|terminated|other side closed|ECONNRESET|socket hang up/i.test(
    error.message,
  );
}

const DEFAULT_POLL_MS = 5000;
const MAX_RESUMES = 50;
/** tasks/cancel is best effort: a cancel never waits long for a host that does not answer. */
const CANCEL_TIMEOUT_MS = 5000;
/** How long, once the host took the cancel, `tasks/result` may take to end with the cancelled task before it is abandoned. */
const RESULT_AFTER_CANCEL_MS = 2000;

/**
 * Waits for a task's outcome while its notifications stream in. `tasks/result` carries the
 * events; a `tasks/get` poll beside it notices a task that ended while the result stream hangs
 * (a dropped SSE stream does not reject its request) and a task the server forgot. Either way
 * `tasks/result` is asked again on the same connection; a failed connection surfaces as an
 * error for the pool to reconnect, and the caller follows the same task id again.
 */
export async function followMcpTask(options: FollowOptions): Promise<CallToolResult> {
  const { connection, mcpTaskId } = options;
  const keys = [mcpTaskId, ...(options.progressToken ? [options.progressToken] : [])];
  // A stream still delivering the task's events is alive, however long the task has been over.
  const activity = { last: Date.now() };
  const onProgress: ProgressListener = (...args) => {
    activity.last = Date.now();
    return options.onProgress(...args);
  };
  for (const key of keys) connection.progressListeners.set(key, onProgress);
  // A warm socket for this task's tasks/cancel, kept while it is followed (lib/mcp-pool.ts).
  connection.followingTasks?.(1);
  try {
    for (let resumes = 0; ; resumes++) {
      const result = await followOnce(options, activity, resumes < MAX_RESUMES);
      if (result) return result;
    }
  } finally {
    connection.followingTasks?.(-1);
    for (const key of keys) if (connection.progressListeners.get(key) === onProgress) connection.progressListeners.delete(key);
  }
}

/** What ends one round of following: the run's cancel (tasks/cancel goes out first), a pause, or a reason to ask again. */
class FollowRound {
  readonly controller = new AbortController();
  verdict: 'resume' | McpTaskForgotten | undefined;
  resumeReason = '';
  /** The tasks/cancel a cancel sent. */
  cancelling: Promise<boolean> | undefined;

  constructor(private readonly options: FollowOptions) {
    options.signal.addEventListener('abort', this.onCancel, { once: true });
    options.pause?.addEventListener('abort', this.onAbort, { once: true });
    options.connection.streamErrors.add(this.onStreamError);
  }

  readonly resume = (why: 'resume' | McpTaskForgotten, reason = '') => {
    if (this.verdict === undefined) this.resumeReason = reason;
    this.verdict ??= why;
    this.controller.abort(new Error(typeof why === 'string' ? 'following the task again' : why.message));
  };

  close(): void {
    this.controller.abort();
    this.options.signal.removeEventListener('abort', this.onCancel);
    this.options.pause?.removeEventListener('abort', this.onAbort);
    this.options.connection.streamErrors.delete(this.onStreamError);
  }

  private readonly onAbort = () => this.controller.abort(this.options.signal.reason);

  private readonly onCancel = () => {
    // Not for an attempt Temporal abandoned: the next one follows the same task.
    if (this.options.signal.reason instanceof AttemptAbandoned) return this.onAbort();
    // tasks/cancel is the only request a cancel sends: the host stops the run on it and then
    // answers the pending tasks/result with the cancelled task's result, which ends that stream.
    // Cancelling tasks/result instead costs one more POST (a new connection, since the run's
    // streams hold the others) racing tasks/cancel to the host, and leaves the stream open at
    // the host, which answers no cancelled request. Abandoned only when that answer does not come.
    this.cancelling = cancelMcpTask(
      this.options.connection.client,
      this.options.mcpTaskId,
      Math.min(this.options.requestTimeoutMs, CANCEL_TIMEOUT_MS),
    );
    void this.cancelling.then((taken) => (taken ? sleep(RESULT_AFTER_CANCEL_MS, this.controller.signal) : undefined)).then(this.onAbort);
  };

  private readonly onStreamError = (error: Error) => {
    if (isStreamLoss(error)) this.resume('resume', 'the result stream dropped');
  };
}

/**
 * One `tasks/result`, with the liveness poll beside it: the task's result, or nothing when it
 * should be asked again (once `onResume` has heard why).
 */
async function followOnce(options: FollowOptions, activity: { last: number }, mayResume: boolean): Promise<CallToolResult | undefined> {
  const { connection, mcpTaskId, signal } = options;
  signal.throwIfAborted();
  if (options.pause?.aborted) throw new FollowPaused();
  const round = new FollowRound(options);
  const poller = pollLiveness(options, round.controller.signal, round.resume, activity);
  try {
    const remaining = options.deadline - Date.now();
    if (remaining <= 0) throw new Error('the run did not finish in time');
    const result = await getMcpTaskResult(connection.client, mcpTaskId, { timeoutMs: remaining, signal: round.controller.signal });
    // The run was cancelled: whatever the stream ended with (the cancelled task, most often), the cancel wins.
    signal.throwIfAborted();
    if (result.isError) await throwIfCancelledByServer(options);
    return result;
  } catch (error) {
    if (options.pause?.aborted && !signal.aborted) throw new FollowPaused();
    if (signal.aborted) {
      if (!(signal.reason instanceof AttemptAbandoned))
        await (round.cancelling ?? cancelMcpTask(connection.client, mcpTaskId, Math.min(options.requestTimeoutMs, CANCEL_TIMEOUT_MS)));
      throw error;
    }
    if (round.verdict instanceof McpTaskForgotten || isMcpTaskNotFound(error)) throw new McpTaskForgotten(mcpTaskId);
    // A server without a result for a task it cancelled answers tasks/result with an error.
    if (error instanceof McpError && round.verdict === undefined) await throwIfCancelledByServer(options);
    if (round.verdict !== 'resume' || !mayResume) throw error;
    await options.onResume?.(round.resumeReason);
    return undefined;
  } finally {
    round.close();
    await poller;
  }
}

async function throwIfCancelledByServer(options: FollowOptions): Promise<void> {
  const task = await getMcpTask(options.connection.client, options.mcpTaskId, { timeoutMs: options.requestTimeoutMs }).catch(
    () => undefined,
  );
  if (task?.status === 'cancelled') throw new McpTaskCancelledByServer();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Polls `tasks/get` until `stop` aborts; calls `resume` when the result stream should be asked again. */
async function pollLiveness(
  options: FollowOptions,
  stop: AbortSignal,
  resume: (why: 'resume' | McpTaskForgotten, reason?: string) => void,
  activity: { last: number },
): Promise<void> {
  let interval = options.pollMs ?? DEFAULT_POLL_MS;
  while (!stop.aborted) {
    await sleep(interval, stop);
    if (stop.aborted) return;
    try {
      const task = await getMcpTask(options.connection.client, options.mcpTaskId, { timeoutMs: options.requestTimeoutMs, signal: stop });
      // The sockets the polls leave idle close after a minute: the pool opens them again.
      options.connection.followingTasks?.(0);
      if (options.pollMs === undefined) interval = Math.max(task.pollInterval ?? 0, DEFAULT_POLL_MS);
      if (TERMINAL_MCP_TASK_STATUSES.has(task.status)) {
        // tasks/result should be returning now, once the events queued before the end are
        // delivered; a stream that stays silent for the grace period is lost.
        const graceMs = options.graceMs ?? 2000;
        do await sleep(graceMs, stop);
        while (!stop.aborted && Date.now() - activity.last < graceMs);
        if (!stop.aborted) resume('resume', `the task is ${task.status} but its result did not arrive`);
        return;
      }
    } catch (error) {
      if (stop.aborted) return;
      if (isMcpTaskNotFound(error)) {
        resume(new McpTaskForgotten(options.mcpTaskId));
        return;
      }
      // Anything else (the connection) shows on tasks/result too.
    }
  }
}

/** The server's word on a task (forgotten, or cancelled by the server): final, never retried. */
export function isMcpTaskVerdict(error: unknown): error is McpTaskForgotten | McpTaskCancelledByServer {
  return error instanceof McpTaskForgotten || error instanceof McpTaskCancelledByServer;
}

/** How long a task-backed run keeps trying to reach its server again before it fails. */
export const RECONNECT_WINDOW_MS = 60_000;

export interface ReattachOptions {
  /** The run's task id, once known (before it, a failure is the plain call's: final). */
  mcpTaskId: () => string | undefined;
  cancelled: () => boolean;
  deadline: number;
  /** Told once per loss of the server (the log's re-attach event). */
  onLost: (error: Error) => Promise<unknown>;
  signal: AbortSignal;
  windowMs?: number;
}

/**
 * Runs `follow` again while the server of a started task cannot be reached (a restarting host,
 * a dropped connection the pool could not replace at once): the task runs on without us, so
 * the run re-attaches rather than fails. A server away for `windowMs` fails the run with the
 * connection's reason; an attempt that followed for a while starts a new window.
 */
export async function reattaching<T>(follow: () => Promise<T>, options: ReattachOptions): Promise<T> {
  const windowMs = options.windowMs ?? RECONNECT_WINDOW_MS;
  let lostSince: number | undefined;
  for (let tries = 0; ; tries++) {
    const startedAt = Date.now();
    try {
      return await follow();
    } catch (error) {
      const failure = error as Error & { cause?: unknown };
      if (
        !options.mcpTaskId() ||
        options.cancelled() ||
        isMcpTaskVerdict(failure.cause) ||
        isMcpTaskVerdict(error) ||
        failure.name !== 'ServerCallFailed'
      )
        throw error;
      const now = Date.now();
      if (lostSince === undefined || now - startedAt > 10_000) {
        lostSince = now;
        tries = 0;
        await options.onLost(failure);
      }
      if (now - lostSince > windowMs || now >= options.deadline) throw error;
      await sleep(Math.min(500 * 2 ** tries, 5000), options.signal);
    }
  }
}
