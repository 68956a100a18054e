/**
 * What an agent engine is to the reference host: `execute_prompt` hands it an EngineRun (the
 * prompt, what the agent may run, its workspace, how to report) and it answers with an
 * EngineOutcome. Engines live beside this file and are chosen by name (index.ts).
 */
import type { ElicitRequestFormParams, ElicitResult } from '@modelcontextprotocol/sdk/types.js';
import type { ExecutePromptResult, FleetAccess, HostEvent, AllowedToolScope } from '../../lib/host-contract';
import type { NetworkEntry } from '../sandbox-network';
import type { Sandbox } from '../sandbox';
import type { FleetSession } from '../fleet-client';

/** What the client answered to a question (ask), with the host's reason when the host answered for it. */
export type AskAnswer = Pick<ElicitResult, 'action' | 'content'> & { reason?: string };

/** What one command run by the agent came to (tool_call/output/tool_result are already emitted). */
export type CommandRun =
  | { refused: string } // not allowed (not in allowedTools, blocked, a path, a shell) – nothing ran
  | {
      refused?: undefined;
      exitCode: number | null;
      signal?: string;
      output: string;
      durationMs: number;
      truncated: boolean;
      timedOut: boolean;
      /** The sandbox limit the command reached (processes, memory, CPU time, file size), in words. */
      limit?: string;
    };

/** One execute_prompt call, as an engine sees it. */
export interface EngineRun {
  executionId: string;
  agentId: string;
  agentName: string;
  prompt: string;
  context?: Record<string, unknown>;
  /** JSON Schema the final `data` must satisfy (structured output), when the caller asked for one. */
  responseSchema?: Record<string, unknown>;
  /**
   * The fleet's MCP endpoint and this run's token, when the agent has subordinates: engines that
   * delegate open it with ../fleet-client.ts. A secret: never emit, log or write it to the workspace
   * except where the engine's own program needs it.
   */
  fleet?: FleetAccess;
  /**
   * The connection to `fleet` the host opened as the run arrived, for an engine that
   * `callsFleet`: ./delegation.ts uses it (the host closes it with the run).
   */
  fleetSession?: FleetSession;
  /** What the agent may run: `{name, allowedCommands, blockedCommands}` per tool. */
  allowedTools: AllowedToolScope[];
  /** The agent's own directory, created at provision_agent and kept between runs. */
  workspace: string;
  /** The hosts the agent may reach from its sandbox (its `network:` capabilities); empty: none. */
  network: readonly NetworkEntry[];
  /** Sends one notifications/message (output, todo, tool_call, tool_result, file_change). */
  emit(event: HostEvent): Promise<void>;
  /** Sends notifications/progress (a no-op when the call has no progress token). */
  progress(done: number, total: number | undefined, message: string): Promise<void>;
  /**
   * Runs one command line as the agent, in its workspace, as a real process (own process group,
   * killed at once when `signal` aborts): only a program in allowedTools, only commands allowed
   * and not blocked, no shell. Emits tool_call, the output (as `output` events, line by line or in
   * chunks) and tool_result {exitCode, durationMs, error?}. `toolCallId` lets an LLM engine keep
   * its own ids.
   */
  runCommand(commandLine: string, options?: { toolCallId?: string; timeoutMs?: number }): Promise<CommandRun>;
  /**
   * Asks the person behind the client (MCP elicitation, form mode: a flat object schema of
   * strings, numbers, booleans and enums) and waits for the answer; the wait does not count
   * against the wall-time limit. A client that cannot answer gets `decline` with a reason; a
   * run stopped while waiting gets `cancel`.
   */
  ask(message: string, requestedSchema: ElicitRequestFormParams['requestedSchema']): Promise<AskAnswer>;
  /** Aborts when the run must stop (cancel, host shutdown). */
  signal: AbortSignal;
  /** Per-run limits: wall time and total output bytes; the engine fails the run with a clear error past them. */
  limits: { wallTimeMs: number; outputBytes: number };
}

/** A run that reached its end, or a failure the engine explains (an isError answer with `error`). */
export type EngineOutcome = { ok: true; result: ExecutePromptResult } | { ok: false; error: string };

export interface Engine {
  /** 'script' | 'shell' | 'openai' | 'claude-code' */
  readonly name: string;
  /**
   * The engine calls the fleet itself, through ./delegation.ts: the host then opens the run's
   * connection as the run arrives, so the handshake is done by the first call (an engine whose
   * program connects on its own, the claude-code CLI, leaves it unset).
   */
  readonly callsFleet?: boolean;
  /** Called at provision_agent: a reason this engine cannot run here (missing CLI, missing settings), or undefined. */
  check(): Promise<string | undefined>;
  run(run: EngineRun): Promise<EngineOutcome>;
}

/** What engines may need from the host; each reads its own part. */
export interface EngineSettings {
  /** Whether the host runs commands at all (HOST_ALLOW_COMMANDS). */
  allowCommands: boolean;
  /** script: pause between steps. */
  stepDelayMs: number;
  /** Aborts when the host closes. */
  shutdown: AbortSignal;
  /** The host's environment, for settings an engine reads (HOST_OPENAI_*, a CLI's path). */
  env: NodeJS.ProcessEnv;
  /** Where programs an engine starts itself (the claude-code CLI) run, as the runner's commands do. */
  sandbox: Sandbox;
}
