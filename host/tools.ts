/**
 * The reference host's seven contract tools, registered on one McpServer per session with the
 * schemas of lib/host-contract.ts, so what the host publishes in tools/list is the contract.
 * `execute_prompt` hands the prompt to the agent's engine (engines/) with what it may run
 * (runner.ts), its workspace (workspaces.ts) and the run's limits (run-guard.ts); the agent
 * tools keep an in-memory registry; the command tools run (shell.ts) only when the host allows commands.
 * How each tool is served, as a plain call or as an MCP task, is tool-serving.ts.
 */
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import {
  allowedToolScopes,
  EXECUTION_META_KEY,
  HOST_TOOLS,
  type HostEvent,
  type HostMessage,
  type HostTool,
  type HostToolArgs,
  type HostToolResult,
} from '../lib/host-contract';
import type { Engine, EngineRun } from './engines/engine';
import type { HostRunOutcome } from './metrics';
import { RunGuard } from './run-guard';
import { commandRunner } from './runner';
import { logEntry, parseVersion, runShell, tail } from './shell';
import { ENGINE_NAMES, isEngineName } from './engines';
import { ensureWorkspace, removeWorkspace } from './workspaces';
import { errorResult, errorText, register } from './tool-serving';
import { SANDBOX_META_KEY } from './sandbox';
import { networkAllowlist, type NetworkEntry } from './sandbox-network';
import type { CallIo, ToolContext, ToolDefinition } from './tool-types';
import { inSpan } from './host-tracing';
import { FleetSession } from './fleet-client';

export { EXECUTION_META_KEY };
export type { CallIo, HostedAgent, ToolContext, ToolDefinition, ToolExtra } from './tool-types';

/** The engine an agent's capabilities name (`engine:<name>`), if one does; the last one wins. */
export function engineCapability(capabilities: readonly string[]): string | undefined {
  const named = capabilities.filter((c) => c.startsWith('engine:')).map((c) => c.slice('engine:'.length).trim());
  return named.at(-1);
}

export function registerHostTools(mcp: McpServer, context: ToolContext): void {
  const tools = defineTools(context);
  for (const name of HOST_TOOLS) register(mcp, name, tools[name], context);
}

function okResult<T extends HostTool>(text: string, structuredContent: HostToolResult<T>): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent };
}

/** Runs `work` with a signal that aborts on host shutdown and on the request's cancellation. */
async function withStopSignal<T>(shutdown: AbortSignal, io: CallIo, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const guard = new RunGuard({ wallTimeMs: Infinity, outputBytes: Infinity }, stopSources(shutdown, io));
  try {
    return await work(guard.signal);
  } finally {
    guard.dispose();
  }
}

function stopSources(shutdown: AbortSignal, io: CallIo) {
  return [
    { signal: io.signal, reason: () => new Error('cancelled') },
    { signal: shutdown, reason: () => (shutdown.reason instanceof Error ? shutdown.reason : new Error('agent host is shutting down')) },
  ];
}

function defineTools(context: ToolContext): { [T in HostTool]: ToolDefinition<T> } {
  const { agents, shutdown } = context;

  async function executePrompt(args: HostToolArgs<'execute_prompt'>, io: CallIo): Promise<CallToolResult> {
    const engine = context.engineFor(agents.get(args.agentId));
    // Opened now, while the workspace is made and the engine starts: its first delegate call finds the handshake done.
    const fleetSession = args.fleet && engine.callsFleet ? new FleetSession(args.fleet, io.signal).warm() : undefined;
    try {
      return await runPrompt(args, io, engine, fleetSession);
    } finally {
      await fleetSession?.close();
    }
  }

  async function runPrompt(
    args: HostToolArgs<'execute_prompt'>,
    io: CallIo,
    engine: Engine,
    fleetSession: FleetSession | undefined,
  ): Promise<CallToolResult> {
    const { executionId } = args;
    const workspace = await ensureWorkspace(context.workspaceRoot, args.agentId, context.sandbox);
    const { progressToken } = io;
    const guard = new RunGuard(context.limits, stopSources(shutdown, io));
    const send = (event: HostEvent) => {
      const data = { executionId, ...event } as HostMessage;
      context.onEvent?.(data);
      return io.notify({ method: 'notifications/message', params: { level: 'info', logger: 'agent', data } }, guard.signal);
    };
    const ask: EngineRun['ask'] = async (message, requestedSchema) => {
      // Waiting for a person is not the run's working time.
      guard.pause();
      try {
        return await io.ask({ message, requestedSchema, _meta: { [EXECUTION_META_KEY]: executionId } }, guard.signal);
      } finally {
        guard.resume();
      }
    };
    const emit = async (event: HostEvent) => {
      if (event.type !== 'output') return send(event);
      if (guard.limitHit === 'output') return;
      const text = guard.takeOutput(event.text);
      if (text) await send({ ...event, text });
    };
    const run: EngineRun = {
      executionId,
      agentId: args.agentId,
      agentName: args.agentName,
      prompt: args.prompt,
      ...(args.context ? { context: args.context } : {}),
      ...(args.responseSchema ? { responseSchema: args.responseSchema } : {}),
      ...(args.fleet ? { fleet: args.fleet } : {}),
      ...(fleetSession ? { fleetSession } : {}),
      allowedTools: allowedToolScopes(args.allowedTools),
      workspace,
      network: agents.get(args.agentId)?.network ?? [],
      emit,
      progress: (done, total, message) =>
        progressToken === undefined
          ? Promise.resolve()
          : io.notify(
              {
                method: 'notifications/progress',
                params: { progressToken, progress: done, ...(total !== undefined ? { total } : {}), message },
              },
              guard.signal,
            ),
      ask,
      runCommand: timedCommands(
        commandRunner(
          {
            executionId,
            agentName: args.agentName,
            allowedTools: allowedToolScopes(args.allowedTools),
            allowCommands: context.allowCommands,
            ask,
            workspace,
            emit: send,
            takeOutput: (text) => guard.takeOutput(text),
            limitHit: () => guard.limitHit,
            signal: guard.signal,
            sandbox: context.sandbox,
            network: agents.get(args.agentId)?.network ?? [],
          },
          context.env,
        ),
      ),
      signal: guard.signal,
      limits: context.limits,
    };
    const settle = async (): Promise<{ value: CallToolResult; outcome: HostRunOutcome }> => {
      const outcome = await inSpan(`engine ${engine.name}`, { 'mcp_fleet.engine': engine.name }, () => engine.run(run)).catch(
        (error: unknown) => {
          // A limit explains the stop better than whatever the engine made of it.
          if (guard.limitHit) return undefined;
          throw error;
        },
      );
      const limitError = guard.limitError();
      if (limitError || !outcome)
        return { value: errorResult(limitError?.message ?? 'stopped'), outcome: limitError ? 'limit' : 'stopped' };
      return outcome.ok
        ? { value: okResult<'execute_prompt'>(outcome.result.output, outcome.result), outcome: 'ok' }
        : { value: errorResult(outcome.error), outcome: 'error' };
    };
    try {
      return context.metrics ? await context.metrics.timeRun(engine.name, settle) : (await settle()).value;
    } finally {
      guard.dispose();
    }
  }

  function timedCommands(runCommand: EngineRun['runCommand']): EngineRun['runCommand'] {
    return context.metrics ? context.metrics.timeCommands(runCommand) : runCommand;
  }

  // What the control plane shows on the server: whether agents' commands run in a sandbox here.
  const sandboxMeta = { [SANDBOX_META_KEY]: context.sandbox.settings.mode };
  const toolSandbox = context.sandbox.settings.toolCommands ? { sandbox: context.sandbox, hostEnv: context.env } : undefined;

  const disabled = (tool: HostTool, structured: Record<string, unknown>) => {
    const log = `${tool} is not enabled on this host`;
    return errorResult(log, { ...structured, log });
  };

  return {
    execute_prompt: {
      description:
        'Runs a prompt on an agent and streams its progress (notifications/progress) and events ' +
        '(notifications/message: output, todo, tool_call, tool_result, file_change).',
      handle: (args, io) => context.trackPrompt(args.executionId, io, () => executePrompt(args, io)),
      task: true,
      meta: sandboxMeta,
    },

    provision_agent: {
      description:
        'Creates (or updates) an agent on this host, with its workspace; it starts inactive. A capability `engine:<name>` chooses its engine.',
      handle: async ({ agentId, name, role, capabilities }) => {
        if (context.failProvision !== undefined) return errorResult(context.failProvision);
        const chosen = engineCapability(capabilities);
        if (chosen !== undefined && !isEngineName(chosen)) {
          return errorResult(
            `unknown engine "${chosen}" (capability engine:${chosen}): this host has the engines ${ENGINE_NAMES.join(', ')}`,
          );
        }
        let network: NetworkEntry[];
        try {
          network = networkAllowlist(capabilities);
        } catch (error) {
          return errorResult(errorText(error));
        }
        const engine = chosen === undefined ? context.engineFor(undefined) : context.engineNamed(chosen);
        // Refused now rather than at the agent's first run.
        const unusable = await engine.check();
        if (unusable !== undefined) return errorResult(`the ${engine.name} engine cannot run agents on this host: ${unusable}`);
        // An agent whose commands could not be contained is not made: HOST_SANDBOX=off is the operator's explicit choice.
        const unsandboxable = context.allowCommands ? await context.sandbox.unusable() : undefined;
        if (unsandboxable !== undefined) return errorResult(`this host cannot sandbox agents' commands: ${unsandboxable}`);
        await ensureWorkspace(context.workspaceRoot, agentId, context.sandbox);
        agents.set(agentId, {
          name,
          role,
          active: agents.get(agentId)?.active ?? false,
          ...(chosen !== undefined ? { engine: chosen } : {}),
          ...(network.length ? { network } : {}),
        });
        return okResult<'provision_agent'>(`provisioned agent ${agentId} (engine ${engine.name})`, { provisioned: true, agentId });
      },
    },

    activate_agent: {
      description: 'Activates a provisioned agent.',
      handle: async ({ agentId }) => {
        const agent = agents.get(agentId);
        if (!agent) return errorResult(`agent ${agentId} is not provisioned on this host`);
        agent.active = true;
        return okResult<'activate_agent'>(`agent ${agentId} is active`, { active: true });
      },
    },

    deactivate_agent: {
      description: 'Deactivates an agent (idempotent: an unknown agent is already inactive); removeWorkspace also deletes its workspace.',
      handle: async ({ agentId, removeWorkspace: remove }) => {
        const agent = agents.get(agentId);
        if (agent) agent.active = false;
        if (remove) await removeWorkspace(context.workspaceRoot, agentId);
        return okResult<'deactivate_agent'>(`agent ${agentId} is inactive${remove ? ', its workspace removed' : ''}`, { active: false });
      },
    },

    install_tool: {
      description: 'Installs a tool with a shell command (only when the host allows commands).',
      task: true,
      handle: async ({ name, installCommand, versionCommand, versionRegex }, io) => {
        if (!context.allowCommands) return disabled('install_tool', { installed: false });
        return withStopSignal(shutdown, io, async (signal) => {
          const install = await runShell(installCommand, signal, toolSandbox);
          let log = logEntry(installCommand, install);
          if (!install.ok) {
            return errorResult(`install of ${name} failed: ${install.error ?? 'unknown error'}`, { installed: false, log: tail(log) });
          }
          let version: string | undefined;
          if (versionCommand) {
            const check = await runShell(versionCommand, signal, toolSandbox);
            log += logEntry(versionCommand, check);
            if (check.ok) version = parseVersion(check.output, versionRegex);
          }
          return okResult<'install_tool'>(`installed ${name}${version ? ` ${version}` : ''}`, {
            installed: true,
            ...(version ? { version } : {}),
            log: tail(log),
          });
        });
      },
    },

    uninstall_tool: {
      description: 'Uninstalls a tool with a shell command (only when the host allows commands).',
      handle: async ({ name, uninstallCommand }, io) => {
        if (!context.allowCommands) return disabled('uninstall_tool', { uninstalled: false });
        const outcome = await withStopSignal(shutdown, io, (signal) => runShell(uninstallCommand, signal, toolSandbox));
        const log = tail(logEntry(uninstallCommand, outcome));
        if (!outcome.ok)
          return errorResult(`uninstall of ${name} failed: ${outcome.error ?? 'unknown error'}`, { uninstalled: false, log });
        return okResult<'uninstall_tool'>(`uninstalled ${name}`, { uninstalled: true, log });
      },
    },

    check_tool: {
      description: 'Reports whether a tool is installed, and its version, by running its version command.',
      handle: async ({ name, versionCommand, versionRegex }, io) => {
        if (!context.allowCommands) return disabled('check_tool', { installed: false });
        const outcome = await withStopSignal(shutdown, io, (signal) => runShell(versionCommand, signal, toolSandbox));
        const log = tail(logEntry(versionCommand, outcome));
        // A failing version command means "not installed", which is an answer, not an error.
        if (!outcome.ok) return okResult<'check_tool'>(`${name} is not installed`, { installed: false, log });
        const version = parseVersion(outcome.output, versionRegex);
        return okResult<'check_tool'>(`${name} is installed${version ? ` (${version})` : ''}`, {
          installed: true,
          ...(version ? { version } : {}),
          log,
        });
      },
    },
  };
}
