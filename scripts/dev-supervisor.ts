/**
 * Keeps one child of `npm run dev` (api, worker, reference host) running: a child that dies
 * after it was ready is started again with exponential backoff, and only a child that keeps
 * crashing stops the stack. A child that dies before it was first ready fails the start,
 * since that is a configuration error (a port taken, a bad variable) that a restart will not fix.
 */
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import type { Logger } from '../lib/logger';

export interface RestartPolicy {
  /** Delay before the first restart; it doubles with each crash inside the window. */
  initialDelayMs: number;
  maxDelayMs: number;
  /** More crashes than this inside `windowMs` and the child is given up on. */
  maxCrashes: number;
  windowMs: number;
}

export const DEFAULT_RESTART_POLICY: RestartPolicy = { initialDelayMs: 500, maxDelayMs: 10_000, maxCrashes: 5, windowMs: 60_000 };

export interface SuperviseOptions {
  name: string;
  /** Starts one run of the child, with piped stdout and stderr. */
  spawn: () => ChildProcess;
  /** An output line that says the child is up. */
  ready: RegExp;
  logger: Logger;
  policy?: Partial<RestartPolicy>;
  onLine?: (line: string) => void;
  /** Each new run, for instance to record its pid. */
  onSpawn?: (child: ChildProcess) => void;
  /** The child keeps crashing: the caller stops the stack. */
  onGiveUp: (reason: string) => void;
}

export interface SupervisedChild {
  /** Settles with the first run: resolves when it is ready, rejects when it dies before. */
  readonly ready: Promise<void>;
  readonly pid: number | undefined;
  readonly restarts: number;
  /** SIGTERM, then SIGKILL after `graceMs`; cancels a pending restart. */
  stop(graceMs: number): Promise<void>;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `signal ${signal}` : `code ${code}`;
}

export function superviseChild(options: SuperviseOptions): SupervisedChild {
  const { name, logger } = options;
  const policy = { ...DEFAULT_RESTART_POLICY, ...options.policy };
  let current: ChildProcess | undefined;
  let everReady = false;
  let stopping = false;
  let restarts = 0;
  let restartTimer: NodeJS.Timeout | undefined;
  const crashes: number[] = [];
  let settleReady!: { resolve: () => void; reject: (error: Error) => void };
  const ready = new Promise<void>((resolve, reject) => {
    settleReady = { resolve, reject };
  });

  const onCrash = (code: number | null, signal: NodeJS.Signals | null) => {
    const now = Date.now();
    crashes.push(now);
    while (crashes.length && crashes[0]! <= now - policy.windowMs) crashes.shift();
    const how = describeExit(code, signal);
    if (crashes.length > policy.maxCrashes) {
      const reason = `${name} crashed ${crashes.length} times within ${policy.windowMs / 1000} s (last exit: ${how}); giving up`;
      logger.error({ child: name, code, signal, crashes: crashes.length }, reason);
      options.onGiveUp(reason);
      return;
    }
    const delayMs = Math.min(policy.initialDelayMs * 2 ** (crashes.length - 1), policy.maxDelayMs);
    restarts += 1;
    logger.warn({ child: name, code, signal, restart: restarts, delayMs }, `${name} exited (${how}); restart ${restarts} in ${delayMs} ms`);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (!stopping) run();
    }, delayMs);
  };

  const run = () => {
    const child = options.spawn();
    current = child;
    let readyThisRun = false;
    let ended = false;
    const onLine = (line: string) => {
      options.onLine?.(line);
      if (readyThisRun || !options.ready.test(line)) return;
      readyThisRun = true;
      if (!everReady) {
        everReady = true;
        settleReady.resolve();
      } else {
        logger.info({ child: name, restart: restarts, pid: child.pid }, `${name} is up again after restart ${restarts}`);
      }
    };
    if (child.stdout) readline.createInterface({ input: child.stdout }).on('line', onLine);
    if (child.stderr) readline.createInterface({ input: child.stderr }).on('line', onLine);
    const onEnd = (code: number | null, signal: NodeJS.Signals | null) => {
      if (ended) return;
      ended = true;
      if (stopping) return;
      if (!everReady) {
        settleReady.reject(new Error(`${name} exited before it was ready (${describeExit(code, signal)})`));
        return;
      }
      onCrash(code, signal);
    };
    child.once('exit', onEnd);
    // A failed spawn (ENOENT, EACCES) emits 'error' and no 'exit'.
    child.once('error', (error) => {
      logger.error({ child: name, err: error }, `${name} could not be started`);
      if (child.pid === undefined) onEnd(null, null);
    });
    options.onSpawn?.(child);
  };

  run();

  return {
    ready,
    get pid() {
      return current?.pid;
    },
    get restarts() {
      return restarts;
    },
    stop(graceMs) {
      stopping = true;
      if (restartTimer) clearTimeout(restartTimer);
      const child = current;
      return new Promise((resolve) => {
        if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      });
    },
  };
}
