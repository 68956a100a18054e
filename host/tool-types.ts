/**
 * What the host's tools share with the code that serves them (tool-serving.ts), the server around
 * them (server.ts) and the call log: the context of every session, how a call reaches its client,
 * and a tool's definition. Types only, so tools.ts and tool-serving.ts both build on it.
 */
import type { HostMetrics } from './metrics';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type {
  CallToolResult,
  ElicitRequestFormParams,
  ProgressToken,
  RequestId,
  ServerNotification,
  ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import type { HostMessage, HostTool, HostToolArgs } from '../lib/host-contract';
import type { Engine } from './engines/engine';
import type { Limits } from './run-guard';
import type { Sandbox } from './sandbox';
import type { NetworkEntry } from './sandbox-network';
import type { HostTaskStore, InputAnswer } from './task-store';

export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * How a call reaches its client: a plain call through its own request (notifications on its
 * stream, cancel by notifications/cancelled), a task through the host's task store (notifications
 * queued for tasks/result, cancel by tasks/cancel). The tools see only this.
 */
export interface CallIo {
  requestId: RequestId;
  /** Aborts when the client cancels the call (or its task). */
  signal: AbortSignal;
  progressToken?: ProgressToken;
  /** `stop`: the run is being stopped, so a task's full queue must not hold it back. */
  notify(notification: ServerNotification, stop?: AbortSignal): Promise<void>;
  /** Asks the client (elicitation/create, form mode); `signal` ends the wait with `cancel`. */
  ask(params: ElicitRequestFormParams, signal: AbortSignal): Promise<InputAnswer>;
}

/** An agent as `provision_agent` left it; the registry lives as long as the host. */
export interface HostedAgent {
  name: string;
  role: string;
  active: boolean;
  /** The engine it runs on, when not the host's. */
  engine?: string;
  /** The hosts its sandboxed commands may reach (its `network:<host>` capabilities); none: no network. */
  network?: NetworkEntry[];
}

/** What the tools share with the server around them (one context for every session). */
export interface ToolContext {
  /** The engine of an agent: its own (provision_agent's `engine`) or the host's. */
  engineFor(agent: HostedAgent | undefined): Engine;
  /** The engine called `name` (throws for a name no engine has). */
  engineNamed(name: string): Engine;
  /** Where agents' workspaces live (one directory per agent). */
  workspaceRoot: string;
  limits: Limits;
  /** The host's environment: what agents' commands get of it is chosen in runner.ts. */
  env: NodeJS.ProcessEnv;
  /** When set, `provision_agent` answers isError with this text. */
  failProvision?: string;
  allowCommands: boolean;
  /** Called just before each `notifications/message` is sent. */
  onEvent?: (data: Readonly<HostMessage>) => void;
  agents: Map<string, HostedAgent>;
  /** Aborted when the host closes: ends every step pause, hang and child process. */
  shutdown: AbortSignal;
  /** Runs an execute_prompt call so that the server can count it, await it on close and see it cancelled. */
  trackPrompt(executionId: string, io: CallIo, run: () => Promise<CallToolResult>): Promise<CallToolResult>;
  /** Keeps a task's background run, so that close() waits for it. */
  trackBackground(run: Promise<unknown>): void;
  /** The host's tasks; undefined: this host does not offer tasks (every call is plain). */
  tasks?: HostTaskStore;
  /** How long a question waits for its answer. */
  inputTimeoutMs: number;
  /** The host's Prometheus metrics (host/main.ts serves them); none: not counted. */
  metrics?: HostMetrics;
  /** Where agents' commands run (sandbox.ts); HOST_SANDBOX=off runs them on the host. */
  sandbox: Sandbox;
}

type ToolHandler<T extends HostTool> = (args: HostToolArgs<T>, io: CallIo) => Promise<CallToolResult>;

export interface ToolDefinition<T extends HostTool> {
  description: string;
  handle: ToolHandler<T>;
  /** Offered as an MCP task too (execution.taskSupport 'optional'), when the host offers tasks. */
  task?: boolean;
  /** The tool's `_meta` in tools/list. */
  meta?: Record<string, unknown>;
}
