/**
 * Commands the reference host runs: those of install_tool, uninstall_tool and check_tool with
 * `sh -c` (the catalog writes them as shell text), and an agent's tool commands as a program
 * and its arguments with no shell at all (what the agent may run is decided by the program's
 * name, which `;` or `$(...)` must not get around). Both under a timeout; a failure is an
 * outcome, never a throw.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Sandbox } from './sandbox';

const COMMAND_TIMEOUT_MS = 5 * 60_000;
const LOG_TAIL_CHARS = 4096;
const DEFAULT_VERSION_PATTERN = /\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?/;

export interface CommandOutcome {
  ok: boolean;
  /** stdout then stderr. */
  output: string;
  /** Why it failed, in a few words (`exit code 2`, `killed (SIGTERM)`, `aborted`, `command not found`). */
  error?: string;
  /** The exit code, when the process ended by itself. */
  exitCode?: number;
}

function describeExecError(error: ExecFileException): string {
  if (error.name === 'AbortError') return 'aborted';
  if (error.code === 'ENOENT') return 'command not found';
  if (error.killed) return `killed (${error.signal ?? 'timeout'})`;
  if (typeof error.code === 'number') return `exit code ${error.code}`;
  return error.message;
}

/** Runs `file` with `args`, no shell in between. `signal` kills it (a cancelled call). */
export function runProgram(
  file: string,
  args: readonly string[],
  signal: AbortSignal,
  as: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, signal, encoding: 'utf8', ...as },
      (error, stdout, stderr) => {
        if (!error) return resolve({ ok: true, output: `${stdout}${stderr}`, exitCode: 0 });
        resolve({
          ok: false,
          output: `${stdout ?? ''}${stderr ?? ''}`,
          error: describeExecError(error),
          ...(typeof error.code === 'number' ? { exitCode: error.code } : {}),
        });
      },
    );
  });
}

/**
 * Runs shell text with `sh -c`: on the host, or with `sandbox` (HOST_SANDBOX_TOOL_COMMANDS) in
 * a sandbox whose only writable place is an empty directory made for this command.
 */
export async function runShell(
  command: string,
  signal: AbortSignal,
  sandboxed?: { sandbox: Sandbox; hostEnv: NodeJS.ProcessEnv },
): Promise<CommandOutcome> {
  const sandbox = sandboxed?.sandbox;
  if (!sandbox || sandbox.settings.mode === 'off') return runProgram('sh', ['-c', command], signal);
  const scratch = await mkdtemp(path.join(os.tmpdir(), 'mcp-fleet-tool-command-'));
  try {
    if (process.getuid?.() === 0) await chown(scratch, sandbox.settings.uid, sandbox.settings.gid);
    const env = { PATH: sandboxed.hostEnv.PATH ?? '/usr/bin:/bin', HOME: scratch, LANG: 'C.UTF-8' };
    const wrapped = await sandbox.wrap(['sh', '-c', command], { workspace: scratch, env }).catch((error: unknown) => error as Error);
    if (wrapped instanceof Error) return { ok: false, output: '', error: `the host cannot sandbox commands: ${wrapped.message}` };
    return await runProgram(wrapped.file, wrapped.args, signal, {
      env: wrapped.env,
      ...(wrapped.uid !== undefined ? { uid: wrapped.uid, gid: wrapped.gid } : {}),
    });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** `$ command`, its output, and why it failed if it did: one command's part of a tool's log. */
export function logEntry(command: string, outcome: CommandOutcome): string {
  return `$ ${command}\n${outcome.output}${outcome.error ? `[${outcome.error}]\n` : ''}`;
}

/** The end of a log, where a failing command says why, short enough for a tool answer. */
export function tail(text: string): string {
  return text.length > LOG_TAIL_CHARS ? text.slice(-LOG_TAIL_CHARS) : text;
}

/** The first group of `versionRegex` (or its whole match), or by default the first x.y[.z]. */
export function parseVersion(output: string, versionRegex?: string): string | undefined {
  const pattern = versionRegex ? new RegExp(versionRegex) : DEFAULT_VERSION_PATTERN;
  const match = pattern.exec(output);
  if (!match) return undefined;
  return (match[1] ?? match[0]).trim() || undefined;
}
