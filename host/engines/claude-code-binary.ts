/**
 * Finding the Claude Code CLI the claude-code engine (claude-code.ts) starts, checking at
 * provision_agent that it answers, and saying why it cannot run here (missing, broken, or in a
 * directory the sandbox's user cannot read), with the fix; and ending the process group the
 * CLI runs in.
 */
import { spawn } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cliEnvironment, type ClaudeCodeSettings } from './claude-code-cli';
import type { EngineSettings } from './engine';

/** How long `claude --version` may take at provision_agent before the CLI counts as broken. */
export const VERSION_TIMEOUT_MS = 10_000;

/** Why the engine cannot run: the CLI is not where HOST_CLAUDE_PATH, or PATH for `claude`, says. */
export function missingCli(cli: ClaudeCodeSettings): string {
  return cli.command === 'claude'
    ? 'the claude-code engine needs the Claude Code CLI: `claude` was not found on PATH (install @anthropic-ai/claude-code or set HOST_CLAUDE_PATH)'
    : `the claude-code engine needs the Claude Code CLI: HOST_CLAUDE_PATH (${cli.command}) was not found`;
}

/** Runs `claude --version`: a reason the engine cannot run here, or undefined. */
export async function checkCli(cli: ClaudeCodeSettings, hostEnv: NodeJS.ProcessEnv): Promise<string | undefined> {
  const outcome = await new Promise<{ code: number | null; error?: NodeJS.ErrnoException; output: string; timedOut: boolean }>(
    (resolve) => {
      let output = '';
      let timedOut = false;
      let failure: NodeJS.ErrnoException | undefined;
      const child = spawn(cli.command, ['--version'], {
        cwd: os.tmpdir(),
        env: cliEnvironment(os.tmpdir(), hostEnv, os.tmpdir()),
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      const timer = setTimeout(() => {
        timedOut = true;
        killGroup(child.pid, 'SIGKILL');
      }, VERSION_TIMEOUT_MS);
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      child.on('error', (error: NodeJS.ErrnoException) => (failure = error));
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, output, timedOut, ...(failure ? { error: failure } : {}) });
      });
    },
  );
  if (outcome.error?.code === 'ENOENT') return missingCli(cli);
  if (outcome.error) return `the claude-code engine cannot start ${cli.command}: ${outcome.error.message}`;
  if (outcome.timedOut)
    return `the claude-code engine's CLI did not answer \`${cli.command} --version\` within ${VERSION_TIMEOUT_MS / 1000} s`;
  if (outcome.code !== 0)
    return `the claude-code engine's CLI failed \`${cli.command} --version\` (exit code ${outcome.code}): ${outcome.output.trim().slice(-500)}`;
  return undefined;
}

/** The CLI's absolute path: HOST_CLAUDE_PATH, or `claude` on the host's PATH. */
export function locateCli(command: string, hostEnv: NodeJS.ProcessEnv): string | undefined {
  if (path.isAbsolute(command)) return existsSync(command) ? command : undefined;
  for (const dir of (hostEnv.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d))) {
    const file = path.join(dir, command);
    try {
      if (statSync(file).isFile()) return file;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The directories the sandbox must show for the CLI to start: where it is named, and where it really is (a link's target). */
export function cliDirectories(file: string): string[] {
  return [...new Set([path.dirname(file), path.dirname(realpathSync(file))])];
}

/** Why the CLI cannot run in this host's sandbox (its directory is private to another user), or undefined. */
export function sandboxProblem(cli: ClaudeCodeSettings, settings: EngineSettings): string | undefined {
  if (settings.sandbox.settings.mode === 'off') return undefined;
  const file = locateCli(cli.command, settings.env);
  if (!file) return missingCli(cli);
  const hidden = cliDirectories(file).find((dir) => !settings.sandbox.canReach(dir));
  if (hidden) {
    return `the Claude Code CLI (${file}) is in ${hidden}, which the sandbox's user cannot read: install it where every user can (npm install -g puts it under /usr/local), or set HOST_SANDBOX=off`;
  }
  return undefined;
}

/** Sends `signal` to the process group of `pid` (the CLI and every command it started), if it is still there. */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
