/**
 * The reference MCP agent host: an MCP server implementing mcp-fleet's host contract
 * (`execute_prompt`, `provision_agent`, `activate_agent`, `deactivate_agent`, `install_tool`,
 * `uninstall_tool`, `check_tool`) over Streamable HTTP, behind a bearer token.
 *
 * There is no AI here. `execute_prompt` plays a script chosen by directives in the prompt
 * (`[steps:N]`, `[delay:MS]`, `[fail]`, `[throw]`, `[hang]`, `[ignore-cancel]`, `[json]`,
 * `[spec]{...}`, `[bytes:N]`), so integration tests, benchmarks and the dev demo get a
 * deterministic agent that streams real MCP notifications.
 *
 * Transport: Streamable HTTP in STATEFUL mode (one McpServer + transport per session) with SSE
 * responses, because the progress and log notifications of a running `execute_prompt` must
 * travel on the SSE stream of that very POST, while the call runs.
 */
import { execFile, type ExecFileException } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { HOST_TOOLS } from '../lib/servers';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  isInitializeRequest,
  isJSONRPCRequest,
  type CallToolResult,
  type ServerNotification,
  type ServerRequest,
} from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

export interface AgentHostOptions {
  /** Bearer token every HTTP request must carry. */
  token: string;
  /** Port to listen on; default 0 (an ephemeral port). */
  port?: number;
  /** Address to bind; default 127.0.0.1. */
  host?: string;
  /** MCP endpoint path; default '/mcp'. */
  path?: string;
  /** Pause between the steps of an `execute_prompt` script; default 20 ms. */
  stepDelayMs?: number;
  /** When set, `provision_agent` answers isError with this text. */
  failProvision?: string;
  /** Lets install_tool / uninstall_tool / check_tool run their shell commands; default false. */
  allowCommands?: boolean;
  /** Called just before each `notifications/message` is sent (benchmarks time delivery from here). */
  onEvent?: (data: Readonly<Record<string, unknown>>) => void;
  /** serverInfo name; default 'mcp-fleet-agent-host'. */
  name?: string;
  /** serverInfo version; default '1.0.0'. */
  version?: string;
}

export interface ReceivedCall {
  tool: string;
  args: Record<string, unknown>;
  at: number;
  requestId: string | number;
}

export interface AgentHost {
  url: string;
  port: number;
  token: string;
  /** Every tools/call received (on a valid session), in arrival order, before validation. */
  calls: ReceivedCall[];
  /** Aborts of a running execute_prompt (client cancellation, or its session ending). */
  cancellations: { requestId: string | number; executionId?: string; at: number }[];
  /** execute_prompt calls currently running (a `[hang][ignore-cancel]` call counts until close()). */
  running(): number;
  agents: Map<string, { name: string; role: string; active: boolean }>;
  waitForCall(tool: string, predicate?: (c: ReceivedCall) => boolean, timeoutMs?: number): Promise<ReceivedCall>;
  waitForCancellation(executionId: string, timeoutMs?: number): Promise<void>;
  /** Ends running calls, closes sessions, SSE streams and sockets. Idempotent. */
  close(): Promise<void>;
}

/** The host contract's tools (lib/servers.ts is the one list). */
export const AGENT_HOST_TOOLS = HOST_TOOLS;

export type TodoStatus = 'pending' | 'in_progress' | 'completed';
export interface AgentTodo {
  id: string;
  content: string;
  status: TodoStatus;
}

/** What an agent reports while it runs; sent as `notifications/message` data, plus `executionId`. */
export type AgentEvent =
  | { type: 'output'; text: string }
  | { type: 'todo'; todos: AgentTodo[] }
  | { type: 'tool_call'; toolCallId: string; name: string; arguments: Record<string, unknown> }
  | { type: 'tool_result'; toolCallId: string; name: string; result: unknown }
  | { type: 'file_change'; path: string; change: 'created' | 'modified' | 'deleted' };

export type AgentEventData = AgentEvent & { executionId: string };

export interface PromptDirectives {
  /** The prompt with every recognised directive (and the `[spec]` JSON) removed. */
  text: string;
  steps?: number;
  delayMs?: number;
  bytes?: number;
  fail: boolean;
  throw: boolean;
  hang: boolean;
  ignoreCancel: boolean;
  json: boolean;
  spec?: Record<string, unknown>;
}

const DEFAULT_STEP_DELAY_MS = 20;
const COMMAND_TIMEOUT_MS = 5 * 60_000;
const LOG_TAIL_CHARS = 4096;
const MAX_BODY_BYTES = 4 * 1024 * 1024;
const DEFAULT_WAIT_MS = 5000;
const DEFAULT_VERSION_PATTERN = /\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?/;

type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

// ---------------------------------------------------------------------------------------------
// Prompt directives
// ---------------------------------------------------------------------------------------------

/** The JSON object starting at the first non-blank character from `from`, if there is one. */
function readJsonObject(text: string, from: number): { value: Record<string, unknown>; end: number } | undefined {
  let start = from;
  while (start < text.length && /\s/.test(text[start]!)) start++;
  if (text[start] !== '{') return undefined;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) {
        try {
          const value: unknown = JSON.parse(text.slice(start, i + 1));
          if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
            return { value: value as Record<string, unknown>, end: i + 1 };
          }
        } catch {
          // Not JSON after all: the text stays part of the prompt.
        }
        return undefined;
      }
    }
  }
  return undefined;
}

export function parseDirectives(prompt: string): PromptDirectives {
  let text = prompt;
  let spec: Record<string, unknown> | undefined;
  // The spec goes first so that brackets inside its JSON strings are never read as directives.
  const specAt = text.indexOf('[spec]');
  if (specAt >= 0) {
    const json = readJsonObject(text, specAt + '[spec]'.length);
    if (json) {
      spec = json.value;
      text = `${text.slice(0, specAt).replace(/[ \t]$/, '')}${text.slice(json.end)}`;
    }
  }
  const found: Omit<PromptDirectives, 'text'> = { fail: false, throw: false, hang: false, ignoreCancel: false, json: false, spec };
  // A directive goes with the one space before it; the rest of the prompt keeps its spacing.
  text = text.replace(/[ \t]?(?:\[(steps|delay|bytes):(\d+)\]|\[(fail|throw|hang|ignore-cancel|json)\])/g, (_match, key?: string, value?: string, flag?: string) => {
    if (key === 'steps') found.steps = Number(value);
    else if (key === 'delay') found.delayMs = Number(value);
    else if (key === 'bytes') found.bytes = Number(value);
    else if (flag === 'fail') found.fail = true;
    else if (flag === 'throw') found.throw = true;
    else if (flag === 'hang') found.hang = true;
    else if (flag === 'ignore-cancel') found.ignoreCancel = true;
    else if (flag === 'json') found.json = true;
    return '';
  });
  return { ...found, text: text.trim() };
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

interface Step {
  label: string;
  events: AgentEvent[];
}

function todos(plan: TodoStatus, work: TodoStatus, check: TodoStatus): AgentEvent {
  return {
    type: 'todo',
    todos: [
      { id: 'plan', content: 'Plan the work', status: plan },
      { id: 'do', content: 'Do the work', status: work },
      { id: 'check', content: 'Check the result', status: check },
    ],
  };
}

function scriptFor(directives: PromptDirectives, executionId: string): Step[] {
  if (directives.bytes !== undefined) {
    return [{ label: `output of ${directives.bytes} bytes`, events: [{ type: 'output', text: 'x'.repeat(directives.bytes) }] }];
  }
  if (directives.steps !== undefined) {
    return Array.from({ length: directives.steps }, (_, i) => ({
      label: `step ${i + 1} of ${directives.steps}`,
      events: [{ type: 'output', text: `chunk ${i + 1}\n` }],
    }));
  }
  const toolCallId = `call-${executionId}-1`;
  const rest: AgentEvent[] = directives.text ? [{ type: 'output', text: directives.text }] : [];
  return [
    { label: 'planning', events: [todos('pending', 'pending', 'pending'), todos('in_progress', 'pending', 'pending')] },
    {
      label: 'running a tool',
      events: [
        todos('completed', 'in_progress', 'pending'),
        { type: 'tool_call', toolCallId, name: 'shell', arguments: { command: 'echo hi' } },
        { type: 'tool_result', toolCallId, name: 'shell', result: { exitCode: 0, stdout: 'hi\n' } },
      ],
    },
    { label: 'writing', events: [{ type: 'file_change', path: 'NOTES.md', change: 'created' }, { type: 'output', text: 'Done: ' }] },
    { label: 'checking', events: [todos('completed', 'completed', 'in_progress'), ...rest] },
    { label: 'finished', events: [todos('completed', 'completed', 'completed')] },
  ];
}

function generatedSpec(prompt: string): Record<string, unknown> {
  return {
    name: 'generated-agent',
    displayName: 'Generated Agent',
    description: `Created from: ${prompt}`,
    role: 'WORKER',
    capabilities: ['general'],
  };
}

/** Resolves never; rejects when `signal` aborts (the only way out of a hang). */
function waitForAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    const fail = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

function errorResult(text: string, structuredContent?: Record<string, unknown>): CallToolResult {
  return { isError: true, content: [{ type: 'text', text }], ...(structuredContent ? { structuredContent } : {}) };
}

function okResult(text: string, structuredContent: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent };
}

// ---------------------------------------------------------------------------------------------
// Shell commands (install_tool, uninstall_tool, check_tool)
// ---------------------------------------------------------------------------------------------

interface CommandOutcome {
  ok: boolean;
  output: string;
  error?: string;
}

function describeExecError(error: ExecFileException): string {
  if (error.name === 'AbortError') return 'aborted';
  if (error.killed) return `killed (${error.signal ?? 'timeout'})`;
  if (typeof error.code === 'number') return `exit code ${error.code}`;
  return error.message;
}

function runShell(command: string, signal: AbortSignal): Promise<CommandOutcome> {
  return new Promise((resolve) => {
    execFile(
      'sh',
      ['-c', command],
      { timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024, signal, encoding: 'utf8' },
      (error, stdout, stderr) => {
        resolve({ ok: !error, output: `${stdout}${stderr}`, ...(error ? { error: describeExecError(error) } : {}) });
      },
    );
  });
}

function logEntry(command: string, outcome: CommandOutcome): string {
  return `$ ${command}\n${outcome.output}${outcome.error ? `[${outcome.error}]\n` : ''}`;
}

function tail(text: string): string {
  return text.length > LOG_TAIL_CHARS ? text.slice(-LOG_TAIL_CHARS) : text;
}

function parseVersion(output: string, versionRegex?: string): string | undefined {
  const pattern = versionRegex ? new RegExp(versionRegex) : DEFAULT_VERSION_PATTERN;
  const match = pattern.exec(output);
  if (!match) return undefined;
  return (match[1] ?? match[0]).trim() || undefined;
}

// ---------------------------------------------------------------------------------------------
// HTTP plumbing
// ---------------------------------------------------------------------------------------------

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function jsonRpcError(res: ServerResponse, status: number, code: number, message: string): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code, message }, id: null });
}

/** Reads and parses a JSON body; answers the error itself and returns undefined on failure. */
async function readJsonBody(req: IncomingMessage, res: ServerResponse): Promise<{ body: unknown } | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Passing parsedBody to the transport skips its own size limit, so it is enforced here
    // (the rest of an oversized body is read and dropped so the answer can still be sent).
    if (size <= MAX_BODY_BYTES) chunks.push(chunk);
  }
  if (size > MAX_BODY_BYTES) {
    jsonRpcError(res, 413, -32000, `Request body exceeds ${MAX_BODY_BYTES} bytes`);
    return undefined;
  }
  try {
    return { body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown };
  } catch {
    jsonRpcError(res, 400, -32700, 'Parse error');
    return undefined;
  }
}

function isInitialization(body: unknown): boolean {
  return Array.isArray(body) ? body.some((m) => isInitializeRequest(m)) : isInitializeRequest(body);
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

// ---------------------------------------------------------------------------------------------
// The host
// ---------------------------------------------------------------------------------------------

interface Session {
  mcp: McpServer;
  transport: StreamableHTTPServerTransport;
}

interface Waiter {
  /** Resolves the waiter if what it waits for is there now; says whether it did. */
  settle(): boolean;
  reject(error: Error): void;
}

export async function startAgentHost(options: AgentHostOptions): Promise<AgentHost> {
  if (!options.token) throw new Error('startAgentHost: a token is required');
  const token = options.token;
  const mcpPath = options.path ?? '/mcp';
  const bind = options.host ?? '127.0.0.1';
  const stepDelayMs = options.stepDelayMs ?? DEFAULT_STEP_DELAY_MS;
  const info = { name: options.name ?? 'mcp-fleet-agent-host', version: options.version ?? '1.0.0' };

  const calls: ReceivedCall[] = [];
  const cancellations: AgentHost['cancellations'] = [];
  const agents: AgentHost['agents'] = new Map();
  const sessions = new Map<string, Session>();
  // Every transport, initialised or not, so close() also reaches half-open ones.
  const allSessions = new Set<Session>();
  const inflight = new Set<Promise<CallToolResult>>();
  const waiters = new Set<Waiter>();
  // Aborted by close(): ends every step pause, hang and child process, whatever the client does.
  const shutdown = new AbortController();
  // One listener per running call: hundreds in load tests are expected, not a leak.
  setMaxListeners(0, shutdown.signal);
  let closing = false;
  let runningCount = 0;

  const notifyWaiters = () => {
    for (const waiter of [...waiters]) {
      if (waiter.settle()) waiters.delete(waiter);
    }
  };

  function waitFor<T>(find: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    const found = find();
    if (found !== undefined) return Promise.resolve(found);
    if (closing) return Promise.reject(new Error(`agent host closed while waiting for ${what}`));
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const waiter: Waiter = {
        settle: () => {
          const value = find();
          if (value === undefined) return false;
          clearTimeout(timer);
          resolve(value);
          return true;
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      waiters.add(waiter);
    });
  }

  function recordCalls(body: unknown): void {
    for (const message of Array.isArray(body) ? body : [body]) {
      if (!isJSONRPCRequest(message) || message.method !== 'tools/call') continue;
      const params = message.params as { name?: unknown; arguments?: unknown } | undefined;
      const args = params?.arguments;
      calls.push({
        tool: typeof params?.name === 'string' ? params.name : '',
        args: typeof args === 'object' && args !== null && !Array.isArray(args) ? (args as Record<string, unknown>) : {},
        at: Date.now(),
        requestId: message.id,
      });
    }
    notifyWaiters();
  }

  async function executePrompt(
    args: { executionId: string; prompt: string; responseSchema?: Record<string, unknown> },
    extra: ToolExtra,
  ): Promise<CallToolResult> {
    const directives = parseDirectives(args.prompt);
    // A host that ignores cancel only stops when it is shut down.
    return withStopSignal(extra, directives.ignoreCancel, (stop) => runScript(args, directives, extra, stop));
  }

  async function runScript(
    args: { executionId: string; responseSchema?: Record<string, unknown> },
    directives: PromptDirectives,
    extra: ToolExtra,
    stop: AbortSignal,
  ): Promise<CallToolResult> {
    const { executionId } = args;
    const delayMs = directives.delayMs ?? stepDelayMs;
    const progressToken = extra._meta?.progressToken;

    const emit = (event: AgentEvent) => {
      const data: AgentEventData = { executionId, ...event };
      options.onEvent?.(data);
      return extra.sendNotification({ method: 'notifications/message', params: { level: 'info', logger: 'agent', data } });
    };
    const progress = (done: number, total: number, message: string) =>
      progressToken === undefined
        ? Promise.resolve()
        : extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: done, total, message } });
    const checkStop = () => {
      if (stop.aborted) throw shutdown.signal.aborted ? new Error('agent host is shutting down') : new Error('cancelled');
    };

    // What [fail], [throw] and [hang] do, right after the first output chunk.
    let interrupted = false;
    const interrupt = async (): Promise<CallToolResult | undefined> => {
      interrupted = true;
      if (directives.fail) return errorResult('simulated agent failure: fail directive');
      if (directives.throw) throw new Error('host exploded');
      if (directives.hang) await waitForAbort(stop).catch(() => checkStop());
      return undefined;
    };

    const steps = scriptFor(directives, executionId);
    let output = '';
    for (let i = 0; i < steps.length; i++) {
      if (i > 0 && delayMs > 0) await sleep(delayMs, undefined, { signal: stop }).catch(() => checkStop());
      checkStop();
      for (const event of steps[i]!.events) {
        await emit(event);
        if (event.type === 'output') {
          output += event.text;
          if (!interrupted) {
            const early = await interrupt();
            if (early) return early;
          }
        }
      }
      await progress(i + 1, steps.length, steps[i]!.label);
    }
    if (!interrupted) {
      const early = await interrupt();
      if (early) return early;
    }
    checkStop();

    const wantsData = directives.json || directives.spec !== undefined || args.responseSchema !== undefined;
    const data = wantsData ? (directives.spec ?? generatedSpec(directives.text)) : undefined;
    return okResult(output, { success: true, output, tokensUsed: output.length, ...(data !== undefined ? { data } : {}) });
  }

  /**
   * Runs `work` with a signal that aborts on host shutdown and, unless `ignoreCancel`, on the
   * request's cancellation. Hand-linked rather than AbortSignal.any() so that nothing stays
   * attached to the host-lifetime shutdown signal once a call is over.
   */
  async function withStopSignal<T>(extra: ToolExtra, ignoreCancel: boolean, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController();
    const sources = ignoreCancel ? [shutdown.signal] : [extra.signal, shutdown.signal];
    const listeners = sources.map((source) => {
      const listener = () => controller.abort(source.reason);
      if (source.aborted) listener();
      else source.addEventListener('abort', listener, { once: true });
      return { source, listener };
    });
    try {
      return await work(controller.signal);
    } finally {
      for (const { source, listener } of listeners) source.removeEventListener('abort', listener);
    }
  }

  function buildMcpServer(): McpServer {
    // The logging capability is what lets notifications/message through the SDK's capability check.
    const mcp = new McpServer(info, { capabilities: { logging: {} } });

    mcp.registerTool(
      'execute_prompt',
      {
        description:
          'Runs a prompt on an agent and streams its progress (notifications/progress) and events ' +
          '(notifications/message: output, todo, tool_call, tool_result, file_change).',
        inputSchema: {
          executionId: z.string(),
          agentId: z.string(),
          agentName: z.string(),
          prompt: z.string(),
          context: z.record(z.string(), z.unknown()).optional(),
          allowedTools: z.array(z.string()).optional(),
          responseSchema: z.record(z.string(), z.unknown()).optional(),
        },
        outputSchema: {
          success: z.boolean(),
          output: z.string(),
          tokensUsed: z.number().int().nonnegative().optional(),
          data: z.unknown().optional(),
        },
      },
      async (args, extra) => {
        const onAbort = () => {
          cancellations.push({ requestId: extra.requestId, executionId: args.executionId, at: Date.now() });
          notifyWaiters();
        };
        extra.signal.addEventListener('abort', onAbort, { once: true });
        const run = executePrompt(args, extra);
        inflight.add(run);
        runningCount++;
        try {
          return await run;
        } finally {
          runningCount--;
          inflight.delete(run);
          extra.signal.removeEventListener('abort', onAbort);
        }
      },
    );

    mcp.registerTool(
      'provision_agent',
      {
        description: 'Creates (or updates) an agent on this host; it starts inactive.',
        inputSchema: {
          agentId: z.string(),
          name: z.string(),
          role: z.string(),
          capabilities: z.array(z.string()),
          supervisorId: z.string().optional(),
        },
        outputSchema: { provisioned: z.literal(true), agentId: z.string() },
      },
      async ({ agentId, name, role }) => {
        if (options.failProvision !== undefined) return errorResult(options.failProvision);
        agents.set(agentId, { name, role, active: agents.get(agentId)?.active ?? false });
        return okResult(`provisioned agent ${agentId}`, { provisioned: true, agentId });
      },
    );

    mcp.registerTool(
      'activate_agent',
      {
        description: 'Activates a provisioned agent.',
        inputSchema: { agentId: z.string() },
        outputSchema: { active: z.boolean() },
      },
      async ({ agentId }) => {
        const agent = agents.get(agentId);
        if (!agent) return errorResult(`agent ${agentId} is not provisioned on this host`);
        agent.active = true;
        return okResult(`agent ${agentId} is active`, { active: true });
      },
    );

    mcp.registerTool(
      'deactivate_agent',
      {
        description: 'Deactivates an agent (idempotent: an unknown agent is already inactive).',
        inputSchema: { agentId: z.string() },
        outputSchema: { active: z.boolean() },
      },
      async ({ agentId }) => {
        const agent = agents.get(agentId);
        if (agent) agent.active = false;
        return okResult(`agent ${agentId} is inactive`, { active: false });
      },
    );

    const disabled = (tool: string, structured: Record<string, unknown>) => {
      const log = `${tool} is not enabled on this host`;
      return errorResult(log, { ...structured, log });
    };

    mcp.registerTool(
      'install_tool',
      {
        description: 'Installs a tool with a shell command (only when the host allows commands).',
        inputSchema: {
          name: z.string(),
          installCommand: z.string(),
          versionCommand: z.string().optional(),
          versionRegex: z.string().optional(),
        },
        outputSchema: { installed: z.boolean(), version: z.string().optional(), log: z.string() },
      },
      async ({ name, installCommand, versionCommand, versionRegex }, extra) => {
        if (!options.allowCommands) return disabled('install_tool', { installed: false });
        return withStopSignal(extra, false, async (signal) => {
          const install = await runShell(installCommand, signal);
          let log = logEntry(installCommand, install);
          if (!install.ok) {
            return errorResult(`install of ${name} failed: ${install.error ?? 'unknown error'}`, { installed: false, log: tail(log) });
          }
          let version: string | undefined;
          if (versionCommand) {
            const check = await runShell(versionCommand, signal);
            log += logEntry(versionCommand, check);
            if (check.ok) version = parseVersion(check.output, versionRegex);
          }
          return okResult(`installed ${name}${version ? ` ${version}` : ''}`, { installed: true, ...(version ? { version } : {}), log: tail(log) });
        });
      },
    );

    mcp.registerTool(
      'uninstall_tool',
      {
        description: 'Uninstalls a tool with a shell command (only when the host allows commands).',
        inputSchema: { name: z.string(), uninstallCommand: z.string() },
        outputSchema: { uninstalled: z.boolean(), log: z.string() },
      },
      async ({ name, uninstallCommand }, extra) => {
        if (!options.allowCommands) return disabled('uninstall_tool', { uninstalled: false });
        const outcome = await withStopSignal(extra, false, (signal) => runShell(uninstallCommand, signal));
        const log = tail(logEntry(uninstallCommand, outcome));
        if (!outcome.ok) return errorResult(`uninstall of ${name} failed: ${outcome.error ?? 'unknown error'}`, { uninstalled: false, log });
        return okResult(`uninstalled ${name}`, { uninstalled: true, log });
      },
    );

    mcp.registerTool(
      'check_tool',
      {
        description: 'Reports whether a tool is installed, and its version, by running its version command.',
        inputSchema: { name: z.string(), versionCommand: z.string(), versionRegex: z.string().optional() },
        outputSchema: { installed: z.boolean(), version: z.string().optional(), log: z.string().optional() },
      },
      async ({ name, versionCommand, versionRegex }, extra) => {
        if (!options.allowCommands) return disabled('check_tool', { installed: false });
        const outcome = await withStopSignal(extra, false, (signal) => runShell(versionCommand, signal));
        const log = tail(logEntry(versionCommand, outcome));
        // A failing version command means "not installed", which is an answer, not an error.
        if (!outcome.ok) return okResult(`${name} is not installed`, { installed: false, log });
        const version = parseVersion(outcome.output, versionRegex);
        return okResult(`${name} is installed${version ? ` (${version})` : ''}`, { installed: true, ...(version ? { version } : {}), log });
      },
    );

    return mcp;
  }

  function createSession(): Session {
    const mcp = buildMcpServer();
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
      if (body !== undefined) recordCalls(body);
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

  const port = await listen(server, options.port ?? 0, bind);

  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      closing = true;
      for (const waiter of waiters) waiter.reject(new Error('agent host closed'));
      waiters.clear();
      shutdown.abort(new Error('agent host is shutting down'));
      // Running calls end with an error result that still reaches clients whose streams are open.
      await Promise.allSettled([...inflight]);
      await new Promise<void>((resolve) => setImmediate(resolve));
      await Promise.allSettled([...allSessions].map((session) => session.mcp.close()));
      allSessions.clear();
      sessions.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    })();
    return closed;
  };

  return {
    url: `http://${urlHost(bind)}:${port}${mcpPath}`,
    port,
    token,
    calls,
    cancellations,
    agents,
    running: () => runningCount,
    waitForCall(tool, predicate, timeoutMs = DEFAULT_WAIT_MS) {
      return waitFor(() => calls.find((c) => c.tool === tool && (predicate?.(c) ?? true)), timeoutMs, `a ${tool} call`);
    },
    async waitForCancellation(executionId, timeoutMs = DEFAULT_WAIT_MS) {
      await waitFor(() => cancellations.find((c) => c.executionId === executionId), timeoutMs, `the cancellation of ${executionId}`);
    },
    close,
  };
}
