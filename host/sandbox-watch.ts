/**
 * Watches the processes of one sandboxed command from the host, through /proc: how many there
 * are and how much memory they hold together. The kernel's per-process limits (prlimit in
 * sandbox.ts) stop a process from forking or allocating past them, but a fork bomb held at the
 * process limit would spin until the run's wall time, and many processes each under the memory
 * limit add up; the watch stops the command in both cases, and says which limit it was.
 */
import { readdirSync, readFileSync } from 'node:fs';

export type WatchedLimit = 'processes' | 'memory';

/** How often the processes are counted: often enough that a fork bomb is stopped within a second. */
export const WATCH_INTERVAL_MS = 200;

/** The pids of `pid`'s children (every thread's), or none for a process that is gone. */
function childrenOf(pid: number): number[] {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const task of tasks) {
    try {
      for (const child of readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' '))
        if (child.trim()) children.push(Number(child));
    } catch {
      // The thread ended meanwhile.
    }
  }
  return children;
}

/** A process's resident memory in KiB (0 for one that is gone). */
function residentKib(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * The sandbox's processes under bwrap's own (its first-level child is the sandbox's init,
 * which is not the agent's): their count and resident memory.
 */
export function sandboxUsage(bwrapPid: number): { processes: number; residentMib: number } {
  const init = childrenOf(bwrapPid);
  let processes = 0;
  let kib = 0;
  const queue = init.flatMap(childrenOf);
  // A bounded walk: a tree larger than this is past any limit already.
  while (queue.length && processes < 100_000) {
    const pid = queue.pop()!;
    processes++;
    kib += residentKib(pid);
    queue.push(...childrenOf(pid));
  }
  return { processes, residentMib: kib / 1024 };
}

export interface Watch {
  /** The most processes and memory seen at once. */
  peak: { processes: number; residentMib: number };
  stop(): void;
}

/** Counts the sandbox's processes every WATCH_INTERVAL_MS; calls `onLimit` once when one is reached. */
export function watchSandbox(
  bwrapPid: number,
  limits: { maxProcesses: number; memoryMb: number },
  onLimit: (limit: WatchedLimit) => void,
): Watch {
  const peak = { processes: 0, residentMib: 0 };
  let reported = false;
  const check = () => {
    const usage = sandboxUsage(bwrapPid);
    peak.processes = Math.max(peak.processes, usage.processes);
    peak.residentMib = Math.max(peak.residentMib, usage.residentMib);
    if (reported) return;
    const limit = usage.processes >= limits.maxProcesses ? 'processes' : usage.residentMib >= limits.memoryMb ? 'memory' : undefined;
    if (limit) {
      reported = true;
      onLimit(limit);
    }
  };
  const timer = setInterval(check, WATCH_INTERVAL_MS);
  timer.unref();
  return { peak, stop: () => clearInterval(timer) };
}
