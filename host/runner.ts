/**
 * How an agent's commands run on the reference host (EngineRun.runCommand). A command line is
 * split into a program and its arguments and started with no shell, so the program's name is
 * the tool that was checked against `allowedTools`. Each command is a real process in the
 * agent's workspace, in a sandbox of its own (sandbox.ts: the allowlist decides what starts,
 * the sandbox what it can reach) and a process group of its own, so that cancel, a limit or
 * the host's shutdown ends everything it started at once.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import type { AllowedToolScope, HostEvent } from '../lib/host-contract';
import { programRefusal, splitCommandLine } from '../lib/command-line';
import { commandRefusal } from '../lib/tool-commands';
import type { CommandRun, EngineRun } from './engines/engine';
import type { Sandbox, SandboxedCommand } from './sandbox';
import { limitFromExit, limitReason, signalOfExit, type SandboxLimits } from './sandbox-settings';
import { watchSandbox } from './sandbox-watch';
import { startNetworkProxy, type NetworkEntry, type NetworkProxy } from './sandbox-network';
import { gitConfigPath, resetGitConfig } from './workspaces';
import { inSpan } from './host-tracing';

/** Between SIGTERM and SIGKILL: long enough to exit cleanly, short enough for a cancel to feel immediate. */
export const KILL_GRACE_MS = 1000;

export interface RunnerSetup {
  executionId: string;
  /** Named in the approval question. */
  agentName: string;
  allowedTools: AllowedToolScope[];
  /** Off: every command is refused (a host whose operator runs no commands). */
  allowCommands: boolean;
  workspace: string;
  /** Sends an event as it is (output already went through takeOutput). */
  emit(event: HostEvent): Promise<void>;
  /** The part of an output chunk the run may still print; past the limit the run's signal aborts. */
  takeOutput(text: string): string;
  /** Which run limit has stopped the run, if one has. */
  limitHit(): 'output' | 'wall-time' | undefined;
  signal: AbortSignal;
  /** Asks the client; a tool granted with requiresApproval runs a command only once it is approved. */
  ask?: EngineRun['ask'];
  /** Where commands run: a sandbox each (HOST_SANDBOX=bwrap), or straight on the host (off). */
  sandbox: Sandbox;
  /** The hosts a sandboxed command may reach through the host's proxy (the agent's network: capabilities); none: no network. */
  network?: readonly NetworkEntry[];
}

/** The answer schema of an approval question: one boolean. */
export const APPROVAL_SCHEMA = {
  type: 'object',
  properties: { approve: { type: 'boolean', title: 'Approve', description: 'Run this command' } },
  required: ['approve'],
} as const satisfies Parameters<EngineRun['ask']>[1];

/** The question asked before a command of a tool granted with requiresApproval. */
export function approvalQuestion(agentName: string, commandLine: string): string {
  return `Agent ${agentName} wants to run: ${commandLine}`;
}

/** Why a command line may not run for this agent, or its argv. */
export function checkCommandLine(
  commandLine: string,
  scopes: readonly AllowedToolScope[],
  allowCommands: boolean,
): { argv: string[] } | { refused: string; program: string } {
  const argv = splitCommandLine(commandLine);
  const program = argv?.[0] ?? commandLine.trim().split(/\s+/)[0] ?? '';
  if (!argv?.length || !program) return { program, refused: `"${commandLine}" is not a command line` };
  // A path would run some other program under a granted name.
  if (program.includes('/')) return { program, refused: `give the tool by its name, not a path: ${program}` };
  if (!allowCommands) return { program, refused: 'this host does not run commands (HOST_ALLOW_COMMANDS is off)' };
  const launcher = programRefusal(program, argv.slice(1));
  if (launcher) return { program, refused: launcher };
  const scope = scopes.find((s) => s.name === program);
  if (!scope) return { program, refused: `${program} is not among the agent's allowed tools` };
  const refusal = commandRefusal(scope, argv.slice(1));
  if (refusal) return { program, refused: refusal };
  return { argv };
}

/**
 * The configuration git reads from the environment before any file (command scope: above a
 * repository's own `.git/config`, which the agent writes). Each keeps a program the agent's
 * configuration names from starting in an everyday command: hooks (commit, checkout, merge),
 * the file-system monitor (status, diff), credential helpers (fetch, push), signature programs
 * (log, commit); `safe.bareRepository` keeps git from using a bare repository it only found.
 */
const PINNED_GIT_CONFIG: readonly [string, string][] = [
  ['core.hooksPath', '/dev/null'],
  ['core.fsmonitor', 'false'],
  ['credential.helper', ''],
  ['gpg.program', 'gpg'],
  ['gpg.ssh.program', 'ssh-keygen'],
  ['gpg.x509.program', 'gpgsm'],
  ['safe.bareRepository', 'explicit'],
];

/**
 * What every git an agent runs reads instead of configuration it could have written: no
 * system file, a global file the host rewrites before each command (`<workspace>.gitconfig`,
 * not `$HOME/.gitconfig`, HOME being the workspace), no repository found above the workspace,
 * no prompt, and the programs git would take from configuration given here instead (variables
 * win over every configuration file).
 */
export function gitEnvironment(workspace: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: gitConfigPath(workspace),
    GIT_CEILING_DIRECTORIES: path.dirname(workspace),
    GIT_TERMINAL_PROMPT: '0',
    // Empty: no askpass program (an empty GIT_ASKPASS also hides core.askPass and SSH_ASKPASS).
    GIT_ASKPASS: '',
    GIT_PAGER: 'cat',
    PAGER: 'cat',
    GIT_EDITOR: 'true',
    GIT_SEQUENCE_EDITOR: 'true',
    GIT_SSH_COMMAND: 'ssh',
    // Empty: no proxy program for git:// (it also hides core.gitProxy).
    GIT_PROXY_COMMAND: '',
    // Not ext:: or fd::, which run a command given in the URL, whatever protocol.allow says.
    GIT_ALLOW_PROTOCOL: 'file:git:http:https:ssh',
    GIT_CONFIG_COUNT: String(PINNED_GIT_CONFIG.length),
  };
  PINNED_GIT_CONFIG.forEach(([key, value], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = key;
    env[`GIT_CONFIG_VALUE_${i}`] = value;
  });
  return env;
}

/**
 * The environment of an agent's command: the host's own variables hold its token and its
 * engines' keys, so the agent gets only what programs need, and git's settings
 * (gitEnvironment). PATH keeps absolute entries only: an empty or relative one would let a
 * file the agent wrote in its workspace pass for a tool.
 */
export function agentEnvironment(workspace: string, hostEnv: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const pathEntries = (hostEnv.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(path.delimiter).filter((entry) => path.isAbsolute(entry));
  const env: NodeJS.ProcessEnv = {
    PATH: pathEntries.join(path.delimiter),
    HOME: workspace,
    PWD: workspace,
    TERM: 'dumb',
    ...gitEnvironment(workspace),
  };
  for (const name of ['LANG', 'LC_ALL', 'TZ', 'USER', 'LOGNAME']) if (hostEnv[name] !== undefined) env[name] = hostEnv[name];
  return env;
}

let callCounter = 0;

/** EngineRun.runCommand for one run. Output counts against the run's limit across all its commands. */
export function commandRunner(setup: RunnerSetup, hostEnv: NodeJS.ProcessEnv): EngineRun['runCommand'] {
  const run = runCommand(setup, hostEnv);
  // No attributes: the command line may hold anything the agent wrote.
  return (commandLine, options) => inSpan('command', {}, () => run(commandLine, options));
}

function runCommand(setup: RunnerSetup, hostEnv: NodeJS.ProcessEnv): EngineRun['runCommand'] {
  return async (commandLine, options = {}) => {
    const toolCallId = options.toolCallId ?? `call-${setup.executionId}-${++callCounter}`;
    const checked = checkCommandLine(commandLine, setup.allowedTools, setup.allowCommands);
    const name = 'argv' in checked ? checked.argv[0]! : checked.program;
    await setup.emit({ type: 'tool_call', toolCallId, name, arguments: { command: commandLine } });
    if ('refused' in checked) {
      await setup.emit({ type: 'tool_result', toolCallId, name, result: { error: `refused: ${checked.refused}` } });
      return { refused: checked.refused };
    }
    if (setup.allowedTools.find((scope) => scope.name === name)?.requiresApproval) {
      const answer = setup.ask
        ? await setup.ask(approvalQuestion(setup.agentName, commandLine), APPROVAL_SCHEMA)
        : { action: 'decline' as const, reason: 'nobody to ask' };
      // Only an explicit yes runs it: a decline, a cancel, a missing or false `approve` do not.
      if (answer.action !== 'accept' || answer.content?.approve !== true) {
        const refused = `not approved (${answer.action})`;
        await setup.emit({ type: 'tool_result', toolCallId, name, result: { error: `refused: ${refused}` } });
        return { refused };
      }
    }
    // What the agent wrote in its global git configuration since the last command does not last.
    const reset = await resetGitConfig(setup.workspace).then(
      () => undefined,
      (error: unknown) =>
        `the host could not reset the agent's git configuration (${error instanceof Error ? error.message : String(error)})`,
    );
    if (reset !== undefined) {
      await setup.emit({ type: 'tool_result', toolCallId, name, result: { error: `refused: ${reset}` } });
      return { refused: reset };
    }
    const env = agentEnvironment(setup.workspace, hostEnv);
    let sandboxed: SandboxedCommand | undefined;
    let proxy: NetworkProxy | undefined;
    if (setup.sandbox.settings.mode === 'bwrap') {
      const { sandbox } = setup;
      const wrapped = await (async () => {
        // The command's own proxy, for an agent with a network allowlist: the sandbox has no other way out.
        if (setup.network?.length) proxy = await startNetworkProxy(setup.network, sandbox.proxySocketPath());
        return sandbox.wrap(checked.argv, {
          workspace: setup.workspace,
          env,
          readOnlyPaths: [gitConfigPath(setup.workspace)],
          ...(proxy ? { proxySocket: proxy.socket } : {}),
        });
      })().catch((error: unknown) => ({
        refused: `the host cannot sandbox commands: ${error instanceof Error ? error.message : String(error)}`,
      }));
      if ('refused' in wrapped) {
        await proxy?.close();
        await setup.emit({ type: 'tool_result', toolCallId, name, result: { error: `refused: ${wrapped.refused}` } });
        return wrapped;
      }
      sandboxed = wrapped;
    }
    const outcome = await spawnCommand(checked.argv, {
      cwd: setup.workspace,
      env,
      ...(sandboxed ? { sandboxed, sandboxLimits: setup.sandbox.settings.limits, programFound: setup.sandbox.hasProgram(name, env) } : {}),
      signal: setup.signal,
      timeoutMs: options.timeoutMs,
      takeOutput: setup.takeOutput,
      limitHit: setup.limitHit,
      onOutput: (text) => setup.emit({ type: 'output', text }),
    }).finally(() => proxy?.close());
    const error = commandFailure(outcome);
    await setup.emit({
      type: 'tool_result',
      toolCallId,
      name,
      result: {
        exitCode: outcome.exitCode,
        durationMs: outcome.durationMs,
        ...(outcome.signal ? { signal: outcome.signal } : {}),
        ...(error ? { error } : {}),
      },
    });
    return outcome;
  };
}

type Finished = Extract<CommandRun, { refused?: undefined }> & { notFound?: boolean; cancelled?: boolean };

/** Why a command counts as failed, in a few words, or undefined when it succeeded. */
export function commandFailure(run: CommandRun & { notFound?: boolean; cancelled?: boolean }): string | undefined {
  if (run.refused !== undefined) return `refused: ${run.refused}`;
  if (run.truncated) return 'output limit reached: the command was stopped';
  if (run.timedOut) return `timed out: stopped after ${run.durationMs} ms`;
  if (run.cancelled) return 'cancelled';
  if (run.limit) return run.limit;
  if (run.notFound) return 'command not found';
  if (run.signal) return `killed (${run.signal})`;
  if (run.exitCode !== 0) return `exit code ${run.exitCode}`;
  return undefined;
}

interface SpawnOptions {
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Run through the sandbox: bwrap, its arguments and its user instead of argv. */
  sandboxed?: SandboxedCommand;
  sandboxLimits?: SandboxLimits;
  /** In a sandbox, whether the program is on its PATH (bwrap itself always starts). */
  programFound?: boolean;
  signal: AbortSignal;
  /** This command's own time limit, if it has one (the run's wall time stops it anyway). */
  timeoutMs?: number;
  takeOutput(text: string): string;
  limitHit(): 'output' | 'wall-time' | undefined;
  /** Complete lines (or what is left at the end), in the order they were read. */
  onOutput(text: string): Promise<void>;
}

/** Starts argv in its own process group and streams its output until it ends or must be stopped. */
function spawnCommand(argv: string[], options: SpawnOptions): Promise<Finished> {
  const started = performance.now();
  const { sandboxed, sandboxLimits } = options;
  if (sandboxed && options.programFound === false) {
    // 127, as a shell says it, for a program that is not installed (or not visible in the sandbox).
    return Promise.resolve({ exitCode: 127, output: '', durationMs: 0, truncated: false, timedOut: false, notFound: true });
  }
  return new Promise<Finished>((resolve) => {
    let output = '';
    let timedOut = false;
    let notFound = false;
    let watchedLimit: 'processes' | 'memory' | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    // Emits go one after the other so the client sees the lines in the order they were read.
    let emitting: Promise<void> = Promise.resolve();
    const child = sandboxed
      ? spawn(sandboxed.file, sandboxed.args, {
          cwd: '/',
          env: sandboxed.env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
          ...(sandboxed.uid !== undefined ? { uid: sandboxed.uid, gid: sandboxed.gid } : {}),
        })
      : spawn(argv[0]!, argv.slice(1), { cwd: options.cwd, env: options.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });

    const killGroup = (signal: NodeJS.Signals) => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    const stop = () => {
      if (killTimer) return;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const onAbort = () => stop();
    const watch =
      sandboxed && sandboxLimits && child.pid !== undefined
        ? watchSandbox(child.pid, sandboxLimits, (limit) => {
            watchedLimit = limit;
            // Nothing to wait for: the sandbox's processes are ended together, at once.
            killGroup('SIGKILL');
          })
        : undefined;
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener('abort', onAbort, { once: true });
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            stop();
          }, options.timeoutMs);

    const partial = { stdout: '', stderr: '' };
    const take = (stream: 'stdout' | 'stderr', chunk: string, flush: boolean) => {
      if (options.limitHit() === 'output') return;
      let text = partial[stream] + chunk;
      const cut = flush ? text.length : text.lastIndexOf('\n') + 1;
      partial[stream] = text.slice(cut);
      text = options.takeOutput(text.slice(0, cut));
      if (!text) return;
      output += text;
      const sent = text;
      emitting = emitting.then(() => options.onOutput(sent)).catch(() => undefined);
    };
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => take('stdout', chunk, false));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => take('stderr', chunk, false));

    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') notFound = true;
    });
    child.on('close', (code, childSignal) => {
      if (timer) clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      watch?.stop();
      options.signal.removeEventListener('abort', onAbort);
      take('stdout', '', true);
      take('stderr', '', true);
      // Whatever the command left running in its group does not outlive it.
      killGroup('SIGKILL');
      const durationMs = Math.round(performance.now() - started);
      // In a sandbox, bwrap says "killed by signal N" as the exit code 128 + N, as a shell does.
      const inner = sandboxed && !childSignal ? signalOfExit(code) : undefined;
      const signal = inner ?? childSignal ?? undefined;
      // 127, as a shell says it, for a program that is not installed.
      const exitCode = notFound ? 127 : inner ? null : code;
      const limit = options.limitHit();
      const truncated = limit === 'output';
      const cancelled = options.signal.aborted && !limit;
      timedOut ||= limit === 'wall-time';
      const hit =
        sandboxLimits && !cancelled && !timedOut && !truncated
          ? (watchedLimit ?? limitFromExit({ exitCode, ...(signal ? { signal } : {}), output }))
          : undefined;
      void emitting.then(() =>
        resolve({
          exitCode,
          ...(signal ? { signal } : {}),
          output,
          durationMs,
          truncated,
          timedOut,
          ...(hit && sandboxLimits ? { limit: limitReason(hit, sandboxLimits) } : {}),
          ...(notFound ? { notFound } : {}),
          ...(cancelled ? { cancelled } : {}),
        }),
      );
    });
  });
}
