/**
 * The reference MCP agent host: an MCP server implementing mcp-fleet's host contract
 * (lib/host-contract.ts; the tools are in tools.ts) over Streamable HTTP, behind a bearer token.
 * This file is the HTTP side: authentication, sessions, transports and a graceful close.
 *
 * Transport: Streamable HTTP in STATEFUL mode (one McpServer + transport per session) with SSE
 * responses, because the progress and log notifications of a running `execute_prompt` must
 * travel on the SSE stream of that very POST, while the call runs.
 */
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { GetTaskPayloadRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { isInitialization, jsonRpcError, listen, readJsonBody, sendJson, urlHost } from './http';
import { CallLog, type Cancellation, type ReceivedCall, type TaskRequest } from './call-log';
import { HostTaskStore } from './task-store';
import { hostTaskResult, ResponseWatch } from './task-result';
import os from 'node:os';
import path from 'node:path';
import { createEngine, type Engine } from './engines';
import type { Limits } from './run-guard';
import { registerHostTools, type HostedAgent, type ToolContext } from './tools';
import type { HostMetrics } from './metrics';
import { createSandbox, type Sandbox } from './sandbox';
import { DEFAULT_SANDBOX_SETTINGS, type SandboxLimits, type SandboxSettings } from './sandbox-settings';

export type { ReceivedCall, TaskRequest } from './call-log';

export interface AgentHostOptions {
  /** Bearer token every HTTP request must carry. */
  token: string;
  /** Port to listen on; default 0 (an ephemeral port). */
  port?: number;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** MCP endpoint path; default '/mcp'. */
  path?: string;
  /** The engine agents run on unless provision_agent names another: 'script' (default), 'shell', 'openai', 'claude-code'. */
  engine?: string;
  /** Where agents' workspaces are created (one directory per agent); default mcp-fleet-workspaces under the OS temp dir. */
  workspaceRoot?: string;
  /** Per-run limits; default DEFAULT_LIMITS. */
  limits?: Partial<Limits>;
  /** The environment engines read their settings from and agents' commands get their PATH from; default this process's. */
  env?: NodeJS.ProcessEnv;
  /** Pause between the steps of a `script` engine run; default 20 ms. */
  stepDelayMs?: number;
  /** When set, `provision_agent` answers isError with this text. */
  failProvision?: string;
  /** Lets install_tool / uninstall_tool / check_tool run their commands, and agents run theirs within their allowedTools (the shell engine needs it); default false. */
  allowCommands?: boolean;
  /** Called just before each `notifications/message` is sent (benchmarks time delivery from here). */
  onEvent?: (data: Readonly<Record<string, unknown>>) => void;
  /** Offer execute_prompt and install_tool as MCP tasks too (capabilities.tasks); default true. False: a plain host, as before tasks. */
  tasks?: boolean;
  /** Where tasks are kept across restarts (`<dataDir>/tasks/`); default none: in memory, a restart forgets them. */
  dataDir?: string;
  /** How long a question (elicitation) waits for its answer; default 24 h. */
  inputTimeoutMs?: number;
  /**
   * Where agents' commands run: in a bubblewrap sandbox each (mode 'bwrap', the default) or
   * straight on this machine ('off'); limits, bwrap's path and the sandbox's user (sandbox.ts).
   */
  sandbox?: Partial<Omit<SandboxSettings, 'limits'>> & { limits?: Partial<SandboxLimits> };
  /** Where runs and commands are counted (host/metrics.ts); default none. */
  metrics?: HostMetrics;
  /** serverInfo name; default 'mcp-fleet-agent-host'. */
  name?: string;
  /** serverInfo version; default '1.0.0'. */
  version?: string;
}

export interface AgentHost {
  url: string;
  port: number;
  token: string;
  /** Every tools/call received (on a valid session), in arrival order, before validation. */
  calls: ReceivedCall[];
  /** Aborts of a running execute_prompt (client cancellation, tasks/cancel, or its session ending). */
  cancellations: Cancellation[];
  /** Every tasks/* request received (on a valid session), in arrival order. */
  taskRequests: TaskRequest[];
  /** The host's tasks (undefined when `tasks: false`). */
  tasks?: HostTaskStore;
  /** execute_prompt calls currently running (a `[hang][ignore-cancel]` call counts until close()). */
  running(): number;
  agents: Map<string, HostedAgent>;
  /** The engine agents run on unless provision_agent's capabilities name another. */
  engine: Engine;
  /** Where agents' workspaces are (one directory per agent, workspaces.ts). */
  workspaceRoot: string;
  /** Where agents' commands run. */
  sandbox: Sandbox;
  waitForCall(tool: string, predicate?: (c: ReceivedCall) => boolean, timeoutMs?: number): Promise<ReceivedCall>;
  waitForCancellation(executionId: string, timeoutMs?: number): Promise<void>;
  waitForTaskRequest(method: string, predicate?: (r: TaskRequest) => boolean, timeoutMs?: number): Promise<TaskRequest>;
  /** Ends running calls, closes sessions, SSE streams and sockets. Idempotent. */
  close(): Promise<void>;
}

const DEFAULT_STEP_DELAY_MS = 20;

/** A run may take 30 minutes and print 10 MiB unless the host says otherwise. */
export const DEFAULT_LIMITS: Limits = { wallTimeMs: 30 * 60_000, outputBytes: 10 * 1024 * 1024 };

/** A question waits a day for its answer unless the host says otherwise. */
export const DEFAULT_INPUT_TIMEOUT_MS = 24 * 60 * 60_000;

/** What a task host declares: tasks of tools/call, listable and cancellable. */
const TASK_CAPABILITIES = { list: {}, cancel: {}, requests: { tools: { call: {} } } };

export function defaultWorkspaceRoot(): string {
  return path.join(os.tmpdir(), 'mcp-fleet-workspaces');
}

interface Session {
  mcp: McpServer;
  transport: StreamableHTTPServerTransport;
}

export async function startAgentHost(options: AgentHostOptions): Promise<AgentHost> {
  if (!options.token) throw new Error('startAgentHost: a token is required');
  const token = options.token;
  const mcpPath = options.path ?? '/mcp';
  const bind = options.host ?? '127.0.0.1';
  const info = { name: options.name ?? 'mcp-fleet-agent-host', version: options.version ?? '1.0.0' };

  const log = new CallLog();
  const inputTimeoutMs = options.inputTimeoutMs ?? DEFAULT_INPUT_TIMEOUT_MS;
  const taskStore =
    options.tasks === false ? undefined : new HostTaskStore({ ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}) });
  await taskStore?.open();
  const responses = new ResponseWatch();
  const sessions = new Map<string, Session>();
  // Every transport, initialised or not, so close() also reaches half-open ones.
  const allSessions = new Set<Session>();
  // Aborted by close(): ends every step pause, hang and child process, whatever the client does.
  const shutdown = new AbortController();
  // One listener per running call: hundreds in load tests are expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  let closing = false;

  // eslint-disable-next-line no-restricted-properties -- the host is its own program: its engines and commands read its environment, not the control plane's config
  const hostEnv = options.env ?? process.env;
  const workspaceRoot = path.resolve(options.workspaceRoot ?? defaultWorkspaceRoot());
  const sandbox = createSandbox(
    { ...DEFAULT_SANDBOX_SETTINGS, ...options.sandbox, limits: { ...DEFAULT_SANDBOX_SETTINGS.limits, ...options.sandbox?.limits } },
    // Other agents' workspaces and the host's tasks are never visible to an agent's command.
    { hidden: [workspaceRoot, ...(options.dataDir !== undefined ? [options.dataDir] : [])], hostEnv },
  );
  const engineSettings = {
    allowCommands: options.allowCommands ?? false,
    stepDelayMs: options.stepDelayMs ?? DEFAULT_STEP_DELAY_MS,
    shutdown: shutdown.signal,
    env: hostEnv,
    sandbox,
  };
  const engines = new Map<string, Engine>();
  const engineNamed = (name: string): Engine => {
    let engine = engines.get(name);
    if (!engine) engines.set(name, (engine = createEngine(name, engineSettings)));
    return engine;
  };
  const hostEngine = engineNamed(options.engine ?? 'script');

  const tools: ToolContext = {
    engineFor: (agent) => (agent?.engine ? engineNamed(agent.engine) : hostEngine),
    engineNamed,
    workspaceRoot,
    limits: { ...DEFAULT_LIMITS, ...options.limits },
    env: engineSettings.env,
    failProvision: options.failProvision,
    allowCommands: options.allowCommands ?? false,
    onEvent: options.onEvent,
    agents: new Map(),
    shutdown: shutdown.signal,
    trackPrompt: (executionId, io, run) => log.trackPrompt(executionId, io, run),
    trackBackground: (run) => log.trackBackground(run),
    ...(taskStore ? { tasks: taskStore } : {}),
    inputTimeoutMs,
    sandbox,
    ...(options.metrics ? { metrics: options.metrics } : {}),
  };

  function createSession(): Session {
    // The logging capability is what lets notifications/message through the SDK's capability check.
    // One task store for every session: a task is found from any session with the token.
    const mcp = taskStore
      ? new McpServer(info, { capabilities: { logging: {}, tasks: TASK_CAPABILITIES }, taskStore, defaultTaskPollInterval: 100 })
      : new McpServer(info, { capabilities: { logging: {} } });
    registerHostTools(mcp, tools);
    if (taskStore) {
      mcp.server.setRequestHandler(
        GetTaskPayloadRequestSchema,
        (request, extra) =>
          hostTaskResult(
            taskStore,
            mcp.server,
            request.params.taskId,
            extra,
            inputTimeoutMs,
            responses.signal(extra.sessionId, extra.requestId),
          ) as never,
      );
    }
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: () => randomUUID(),
      onsessioninitialized: (sessionId) => {
        sessions.set(sessionId, session);
      },
      onsessionclosed: (sessionId) => {
        sessions.delete(sessionId);
      },
    });
    const session: Session = { mcp, transport };
    allSessions.add(session);
    // Set before connect(): the SDK's Protocol chains an onclose that is already there.
    transport.onclose = () => {
      allSessions.delete(session);
      if (transport.sessionId !== undefined) sessions.delete(transport.sessionId);
    };
    return session;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    if (pathname !== mcpPath) {
      req.resume();
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    if (req.headers.authorization !== `Bearer ${token}`) {
      req.resume();
      sendJson(res, 401, { error: 'unauthorized' });
      return;
    }
    if (closing) {
      req.resume();
      jsonRpcError(res, 503, -32000, 'Agent host is shutting down');
      return;
    }

    let body: unknown;
    if (req.method === 'POST') {
      const parsed = await readJsonBody(req, res);
      if (!parsed) return;
      body = parsed.body;
    }

    const header = req.headers['mcp-session-id'];
    const sessionId = Array.isArray(header) ? header[0] : header;
    if (sessionId !== undefined) {
      const session = sessions.get(sessionId);
      if (!session) {
        req.resume();
        jsonRpcError(res, 404, -32001, 'Session not found');
        return;
      }
      if (body !== undefined) {
        log.recordCalls(body, sessionId);
        if (taskStore) responses.watch(body, sessionId, res);
      }
      await session.transport.handleRequest(req, res, body);
      return;
    }

    if (req.method === 'POST' && isInitialization(body)) {
      const session = createSession();
      await session.mcp.connect(session.transport);
      await session.transport.handleRequest(req, res, body);
      // A refused initialize never gets a session id: nothing could ever reach this transport again.
      if (session.transport.sessionId === undefined) await session.mcp.close();
      return;
    }

    req.resume();
    jsonRpcError(res, 400, -32000, 'Bad Request: no valid mcp-session-id (send initialize first)');
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      jsonRpcError(res, 500, -32603, `Internal server error: ${error instanceof Error ? error.message : String(error)}`);
    });
  });

  // A client's idle sockets stay usable for a minute (Node's default: 5 s): mcp-fleet sends a
  // cancel over the socket a run's start used, which must still be open when the cancel comes.
  server.keepAliveTimeout = 65_000;
  const port = await listen(server, options.port ?? 0, bind);

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      log.close();
      // Before the runs end on shutdown: on disk they stay running, so the next start reports them lost.
      await taskStore?.close();
      shutdown.abort(new Error('agent host is shutting down'));
      // Running calls end with an error result that still reaches clients whose streams are open.
      await log.settled();
      await new Promise<void>((resolve) => setImmediate(resolve));
      await Promise.allSettled([...allSessions].map((session) => session.mcp.close()));
      allSessions.clear();
      sessions.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      sandbox.close();
    })();
    return closed;
  };

  return {
    url: `http://${urlHost(bind)}:${port}${mcpPath}`,
    port,
    token,
    calls: log.calls,
    cancellations: log.cancellations,
    taskRequests: log.taskRequests,
    ...(taskStore ? { tasks: taskStore } : {}),
    agents: tools.agents,
    engine: hostEngine,
    workspaceRoot: tools.workspaceRoot,
    sandbox,
    running: () => log.running,
    waitForCall: (tool, predicate, timeoutMs) => log.waitForCall(tool, predicate, timeoutMs),
    waitForCancellation: (executionId, timeoutMs) => log.waitForCancellation(executionId, timeoutMs),
    waitForTaskRequest: (method, predicate, timeoutMs) => log.waitForTaskRequest(method, predicate, timeoutMs),
    close,
  };
}
