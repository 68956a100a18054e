/**
 * The claude-code engine: an agent's prompt is run by the Claude Code CLI installed on the
 * host (claude-code-binary.ts finds and checks it) as `claude -p --output-format stream-json
 * --verbose` (claude-code-cli.ts), in the agent's workspace, with the agent's allowedTools as
 * the CLI's permission rules (claude-code-permissions.ts). What the CLI streams becomes the
 * run's events as it arrives (claude-code-stream.ts); its final `result` is the run's answer.
 * The CLI runs in a process group of its own, so a cancel, a limit or the host's shutdown ends
 * it and every command it started at once; with the host's sandbox on, it runs in a sandbox
 * like any agent command (../sandbox.ts), whose only way out is a proxy to its API and the
 * agent's own allowlist.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { FleetAccess } from '../../lib/host-contract';
import { KILL_GRACE_MS } from '../runner';
import type { Sandbox } from '../sandbox';
import { limitReason, signalOfExit } from '../sandbox-settings';
import { startNetworkProxy, type NetworkProxy } from '../sandbox-network';
import { watchSandbox } from '../sandbox-watch';
import { gitConfigPath } from '../workspaces';
import type { Engine, EngineOutcome, EngineRun, EngineSettings } from './engine';
import { checkCli, cliDirectories, killGroup, locateCli, missingCli, sandboxProblem } from './claude-code-binary';
import {
  claudeArguments,
  claudeCodeSettings,
  cliEnvironment,
  cliNetwork,
  fleetMcpConfig,
  fleetNetwork,
  programNames,
  structuredAnswer,
  type ClaudeCodeSettings,
} from './claude-code-cli';
import { permissionRules } from './claude-code-permissions';
import { ClaudeStreamMapper, MalformedStreamError, resultError, tokensOf } from './claude-code-stream';

/** The end of the CLI's stderr kept for the error of a failed run. */
const STDERR_TAIL_CHARS = 2000;

export function createClaudeCodeEngine(settings: EngineSettings): Engine {
  let cli: ClaudeCodeSettings;
  try {
    cli = claudeCodeSettings(settings.env);
  } catch (error) {
    // A wrong setting is the answer to provision_agent, not a host that fails to start.
    const reason = `the claude-code engine is misconfigured: ${(error as Error).message}`;
    return { name: 'claude-code', check: async () => reason, run: async () => ({ ok: false, error: reason }) };
  }
  return {
    name: 'claude-code',
    check: async () => (await checkCli(cli, settings.env)) ?? sandboxProblem(cli, settings),
    run: (run) => runClaude(run, cli, settings),
  };
}

/** How the CLI is started: itself, or bwrap around it, as whom, and the proxy it reaches the network through. */
interface CliStart {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  uid?: number;
  gid?: number;
  proxy?: NetworkProxy;
  sandbox?: Sandbox;
}

/** The CLI's HOME in the sandbox: the sandbox's private /tmp, which goes with it. */
const SANDBOX_HOME = '/tmp';

async function cliStart(
  run: EngineRun,
  cli: ClaudeCodeSettings,
  settings: EngineSettings,
  args: string[],
  home: string | undefined,
  mcpConfig?: McpConfigFile,
): Promise<CliStart | string> {
  const { sandbox } = settings;
  const env = cliEnvironment(run.workspace, settings.env, home ?? SANDBOX_HOME);
  if (sandbox.settings.mode === 'off') return { file: cli.command, args, env, cwd: run.workspace };
  const problem = sandboxProblem(cli, settings);
  if (problem) return problem;
  const file = locateCli(cli.command, settings.env)!;
  const fleet = run.fleet ? fleetNetwork(run.fleet) : [];
  const proxy = await startNetworkProxy([...cliNetwork(settings.env), ...fleet, ...run.network], sandbox.proxySocketPath());
  try {
    const wrapped = await sandbox.wrap([file, ...args], {
      workspace: run.workspace,
      env,
      readOnlyPaths: [gitConfigPath(run.workspace), ...cliDirectories(file), ...(mcpConfig ? [mcpConfig.dir] : [])],
      proxySocket: proxy.socket,
    });
    return {
      file: wrapped.file,
      args: wrapped.args,
      env: wrapped.env,
      cwd: '/',
      ...(wrapped.uid !== undefined ? { uid: wrapped.uid, gid: wrapped.gid } : {}),
      proxy,
      sandbox,
    };
  } catch (error) {
    await proxy.close();
    return `the host cannot sandbox the Claude Code CLI: ${(error as Error).message}`;
  }
}

// Directories a run rarely edits by hand and that may hold most of a workspace's files.
const NOT_LISTED = new Set(['.git', 'node_modules']);
const LISTED_MAX = 20_000;

/**
 * The workspace's files before the run, so that a Write reports `created` or `modified`
 * rightly even when the CLI has written the file by the time its tool use is read. Files past
 * the listing (in NOT_LISTED, or beyond LISTED_MAX) are judged by whether they exist when the
 * tool use is read, which is right unless the CLI was faster.
 */
async function filesBefore(workspace: string): Promise<(file: string) => boolean> {
  const files = new Set<string>();
  let complete = true;
  const queue = [workspace];
  while (queue.length && complete) {
    const dir = queue.shift()!;
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!NOT_LISTED.has(entry.name)) queue.push(full);
      } else files.add(full);
      if (files.size >= LISTED_MAX) complete = false;
    }
  }
  return (file) => {
    if (files.has(file)) return true;
    const parts = path.relative(workspace, file).split(path.sep);
    const listed = complete && parts[0] !== '..' && !parts.some((part) => NOT_LISTED.has(part));
    return listed ? false : existsSync(file);
  };
}

interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why the CLI could not be started (ENOENT is a missing CLI), if it could not. */
  spawnError?: NodeJS.ErrnoException;
  stderr: string;
}

/** A run's `--mcp-config` file, in a directory of its own outside the workspace. */
interface McpConfigFile {
  dir: string;
  file: string;
}

/**
 * Writes the fleet's endpoint and the run's token (fleetMcpConfig) where only the CLI's user
 * reads it: a fresh directory under the OS temp dir (never the workspace, which the agent and
 * later runs read and which may be pushed somewhere), owned by the sandbox's user when the CLI
 * runs as that user, shown read-only in the sandbox. Removed when the run ends.
 */
async function writeMcpConfig(fleet: FleetAccess, sandbox: Sandbox): Promise<McpConfigFile> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'mcp-fleet-claude-'));
  const file = path.join(dir, 'mcp-config.json');
  try {
    await writeFile(file, JSON.stringify(fleetMcpConfig(fleet)), { mode: 0o600 });
    if (sandbox.settings.mode !== 'off' && process.getuid?.() === 0) {
      await chown(dir, sandbox.settings.uid, sandbox.settings.gid);
      await chown(file, sandbox.settings.uid, sandbox.settings.gid);
    }
  } catch (error) {
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
  return { dir, file };
}

async function runClaude(run: EngineRun, cli: ClaudeCodeSettings, settings: EngineSettings): Promise<EngineOutcome> {
  const permissions = permissionRules(run.allowedTools, settings.allowCommands);
  if (typeof permissions === 'string') return { ok: false, error: permissions };
  const mapper = new ClaudeStreamMapper({ workspace: run.workspace, existedBefore: await filesBefore(run.workspace) });
  if (run.signal.aborted) return { ok: false, error: stopReason(run.signal) };
  const mcpConfig = run.fleet ? await writeMcpConfig(run.fleet, settings.sandbox) : undefined;
  // Unsandboxed, the CLI's HOME is a fresh directory only the host's user can enter (mkdtemp:
  // 0700), outside the workspace, removed with the run; sandboxed, it is the sandbox's own /tmp.
  const home = settings.sandbox.settings.mode === 'off' ? await mkdtemp(path.join(os.tmpdir(), 'mcp-fleet-claude-home-')) : undefined;
  try {
    const args = claudeArguments(run, cli, permissions, programNames(run.allowedTools, settings.allowCommands), mcpConfig?.file);
    const start = await cliStart(run, cli, settings, args, home, mcpConfig);
    if (typeof start === 'string') return { ok: false, error: start };
    try {
      return await playCli(run, cli, mapper, start);
    } finally {
      await start.proxy?.close();
    }
  } finally {
    if (mcpConfig) await rm(mcpConfig.dir, { recursive: true, force: true });
    if (home) await rm(home, { recursive: true, force: true });
  }
}

async function playCli(run: EngineRun, cli: ClaudeCodeSettings, mapper: ClaudeStreamMapper, start: CliStart): Promise<EngineOutcome> {
  let malformed: MalformedStreamError | undefined;
  let limited: string | undefined;
  let steps = 0;
  const finished = await new Promise<Finished>((resolve) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      child = spawn(start.file, start.args, {
        cwd: start.cwd,
        env: start.env,
        detached: true,
        stdio: 'pipe',
        ...(start.uid !== undefined ? { uid: start.uid, gid: start.gid } : {}),
      });
    } catch (error) {
      // E2BIG (a prompt or schema past the system's argument limit) is thrown, not emitted.
      resolve({ code: null, signal: null, stderr: '', spawnError: error as NodeJS.ErrnoException });
      return;
    }
    child.stdin.end();
    let killTimer: NodeJS.Timeout | undefined;
    let spawnError: NodeJS.ErrnoException | undefined;
    let stderr = '';
    const stop = () => {
      if (killTimer) return;
      killGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    run.signal.addEventListener('abort', stop, { once: true });
    // In the sandbox, the CLI and its commands together within the sandbox's process and memory limits.
    const watch =
      start.sandbox && child.pid !== undefined
        ? watchSandbox(child.pid, start.sandbox.settings.limits, (limit) => {
            limited = limitReason(limit, start.sandbox!.settings.limits);
            killGroup(child.pid, 'SIGKILL');
          })
        : undefined;

    // Lines are mapped and sent one after the other: the client sees the events in the CLI's order.
    let sending: Promise<void> = Promise.resolve();
    const lines = createInterface({ input: child.stdout, crlfDelay: Infinity });
    lines.on('line', (line) => {
      sending = sending.then(async () => {
        if (malformed || run.signal.aborted) return;
        try {
          const mapped = mapper.line(line);
          for (const event of mapped.events) await run.emit(event);
          if (mapped.progress) await run.progress(++steps, undefined, mapped.progress);
        } catch (error) {
          // A line that is not the format, or a client that can no longer be told: the run cannot go on.
          malformed =
            error instanceof MalformedStreamError
              ? error
              : new MalformedStreamError(`the run's events could not be sent: ${(error as Error).message}`);
          stop();
        }
      });
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS)));
    child.on('error', (error: NodeJS.ErrnoException) => (spawnError = error));
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((done) =>
      child.on('close', (code, signal) => done({ code, signal })),
    );
    const read = new Promise<void>((done) => lines.on('close', done));
    void Promise.all([closed, read]).then(async ([{ code, signal }]) => {
      if (killTimer) clearTimeout(killTimer);
      watch?.stop();
      run.signal.removeEventListener('abort', stop);
      // Whatever the CLI left running in its group does not outlive it.
      killGroup(child.pid, 'SIGKILL');
      await sending;
      // bwrap says "killed by signal N" as the exit code 128 + N.
      const inner = start.sandbox && !signal ? signalOfExit(code) : undefined;
      resolve({ code: inner ? null : code, signal: inner ?? signal, stderr, ...(spawnError ? { spawnError } : {}) });
    });
  });

  if (run.signal.aborted) return { ok: false, error: stopReason(run.signal) };
  if (finished.spawnError?.code === 'ENOENT') return { ok: false, error: missingCli(cli) };
  // E2BIG (a prompt past the system's argument limit), EACCES: said as they are.
  if (finished.spawnError) return { ok: false, error: `Claude Code could not be started: ${finished.spawnError.message}` };
  if (malformed) return { ok: false, error: malformed.message };
  if (limited) return { ok: false, error: `Claude Code was stopped: ${limited}` };
  return outcomeOf(run, cli, mapper, finished);
}

function stopReason(signal: AbortSignal): string {
  return signal.reason instanceof Error ? signal.reason.message : 'cancelled';
}

function stderrNote(stderr: string): string {
  const text = stderr.trim();
  return text ? `: ${text}` : '';
}

/** The run's answer from the CLI's result and how the CLI ended. */
function outcomeOf(run: EngineRun, cli: ClaudeCodeSettings, mapper: ClaudeStreamMapper, finished: Finished): EngineOutcome {
  const result = mapper.result;
  const ended = finished.signal ? `was killed (${finished.signal})` : `exited with code ${finished.code}`;
  if (!result) {
    if (finished.code === 0) return { ok: false, error: `Claude Code ended without a result message${stderrNote(finished.stderr)}` };
    return { ok: false, error: `Claude Code ${ended}${stderrNote(finished.stderr)}` };
  }
  if (result.is_error || result.subtype !== 'success') {
    // The CLI's own account of an API error, when the result carries no words of its own.
    const said = result.result?.trim() || !mapper.apiErrors.length ? result : { ...result, result: mapper.apiErrors.join('\n') };
    return { ok: false, error: resultError(said, cli.maxTurns) };
  }
  if (finished.code !== 0) return { ok: false, error: `Claude Code ${ended} after its result${stderrNote(finished.stderr)}` };
  const output = result.result ?? mapper.texts.join('\n');
  const tokensUsed = tokensOf(result);
  let data: { data: unknown } | undefined;
  if (run.responseSchema) {
    const answer = structuredAnswer(output, run.responseSchema);
    if ('error' in answer) return { ok: false, error: answer.error };
    data = answer;
  }
  return { ok: true, result: { success: true, output, ...(tokensUsed !== undefined ? { tokensUsed } : {}), ...(data ?? {}) } };
}
