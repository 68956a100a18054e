/**
 * The reference host sandbox's settings (HOST_SANDBOX_*, host-settings.ts) and its limits: their
 * defaults, and the readable reason a command gets when it hits one.
 */
import os from 'node:os';

export type SandboxMode = 'bwrap' | 'off';

export interface SandboxLimits {
  /** Each process's data (RLIMIT_DATA), and the resident memory of all of them together (watched). */
  memoryMb: number;
  /** Processes and threads at once (RLIMIT_NPROC in the sandbox's own user namespace, and watched). */
  maxProcesses: number;
  /** CPU time of each process (RLIMIT_CPU): SIGXCPU, then SIGKILL a second later. */
  cpuSeconds: number;
  /** The largest file a process may write (RLIMIT_FSIZE). */
  fileSizeMb: number;
  /** The private /tmp and /dev/shm (each a tmpfs: memory). */
  tmpMb: number;
}

export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = { memoryMb: 2048, maxProcesses: 256, cpuSeconds: 600, fileSizeMb: 1024, tmpMb: 256 };

/** The sandbox's settings, HOST_SANDBOX_* (host-settings.ts). */
export interface SandboxSettings {
  mode: SandboxMode;
  /** BWRAP_PATH; default `bwrap` on PATH, else the project's tools folder (`npm run dev` unpacks it there). */
  bwrapPath?: string;
  /** Whom commands run as on a host running as root (on another host: the host's own user). */
  uid: number;
  gid: number;
  limits: SandboxLimits;
  /** More directories visible read-only (HOST_SANDBOX_READ_PATHS). */
  readPaths: string[];
  /** Run install_tool, uninstall_tool and check_tool commands in a sandbox too (HOST_SANDBOX_TOOL_COMMANDS). */
  toolCommands: boolean;
}

export const DEFAULT_SANDBOX_SETTINGS: SandboxSettings = {
  mode: 'bwrap',
  uid: 65534,
  gid: 65534,
  limits: DEFAULT_SANDBOX_LIMITS,
  readPaths: [],
  toolCommands: false,
};

/** The reason a sandboxed command failed because of a limit, or undefined. */
export function limitReason(limit: 'processes' | 'memory' | 'cpu' | 'file-size', limits: SandboxLimits): string {
  switch (limit) {
    case 'processes':
      return `stopped at the sandbox's process limit (${limits.maxProcesses} processes at once, HOST_SANDBOX_MAX_PROCESSES)`;
    case 'memory':
      return `out of memory: the sandbox allows ${limits.memoryMb} MiB (HOST_SANDBOX_MEMORY_MB)`;
    case 'cpu':
      return `stopped at the sandbox's CPU time limit (${limits.cpuSeconds} s per process, HOST_SANDBOX_CPU_SECONDS)`;
    case 'file-size':
      return `a file reached the sandbox's file size limit (${limits.fileSizeMb} MiB, HOST_SANDBOX_FILE_SIZE_MB)`;
  }
}

/** What a program prints when an allocation fails, in the common runtimes (Python, C, C++, Node, Go, Java, Rust). */
const OUT_OF_MEMORY =
  /MemoryError|Cannot allocate memory|out of memory|std::bad_alloc|heap out of memory|OutOfMemoryError|memory allocation of \d+ bytes failed/i;
/** What a program prints when a write passes RLIMIT_FSIZE (Python ignores SIGXFSZ and sees EFBIG). */
const FILE_TOO_LARGE = /File too large/;

/**
 * Which sandbox limit a finished command hit, from how it ended: the signal RLIMIT_CPU or
 * RLIMIT_FSIZE sends, or what it printed when an allocation or a write was refused.
 */
export function limitFromExit(run: {
  exitCode: number | null;
  signal?: string;
  output: string;
}): 'cpu' | 'file-size' | 'memory' | undefined {
  if (run.signal === 'SIGXCPU') return 'cpu';
  if (run.signal === 'SIGXFSZ') return 'file-size';
  if (run.exitCode === 0 && !run.signal) return undefined;
  if (OUT_OF_MEMORY.test(run.output)) return 'memory';
  if (FILE_TOO_LARGE.test(run.output)) return 'file-size';
  return undefined;
}

/** bwrap ends with 128 + N when the command was killed by signal N; the signal's name, or undefined. */
export function signalOfExit(code: number | null): NodeJS.Signals | undefined {
  if (code === null || code <= 128 || code > 128 + 64) return undefined;
  const found = Object.entries(os.constants.signals).find(([, number]) => number === code - 128);
  return found?.[0] as NodeJS.Signals | undefined;
}
