/**
 * Delegation on the reference host's engines (issue 22), end to end on the host's side: a real
 * host, called by the SDK client with execute_prompt's `fleet` argument, reaches a real MCP
 * server standing in for mcp-fleet's endpoint (official SDK `McpServer` behind a stateless
 * Streamable HTTP transport on a loopback port) that offers `list_subordinates` and `delegate`
 * with the endpoint's shapes, checks the run token, records every call, sends a progress
 * notification while a child "runs", and refuses what is not a direct subordinate (an isError
 * answer with its reason). The fleet side itself (child workflows, run tokens) is tested where it
 * is built; here, what each engine does with it.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import type { FleetAccess, HostMessage } from '../../lib/host-contract';
import type { DelegateResult, Subordinate } from '../fleet-client';
import { readJsonBody, sendJson } from '../http';
import { startOpenAIStandIn, streamed, textChunks, toolCallChunks, usageChunk, type OpenAIStandIn } from '../../test/openai-stand-in';
import { startAgentHost, type AgentHost, type AgentHostOptions } from '../server';
import { NO_FLEET_ACCESS, RESULT_OUTPUT_CHARS } from './delegation';
import { parseDirectives } from './script-directives';
import { parseRunbook } from './shell';

const RUN_TOKEN = 'mcpr_run-token-secret-0042';

// ---------------------------------------------------------------------------------------------
// The fleet's endpoint, as a run token's client sees it
// ---------------------------------------------------------------------------------------------

const SUBORDINATES: Subordinate[] = [
  { id: 'agent-writer', name: 'writer', displayName: 'Writer', role: 'WORKER', capabilities: ['general'], status: 'ACTIVE' },
  { id: 'agent-reviewer', name: 'reviewer', displayName: null, role: 'WORKER', capabilities: ['review'], status: 'ACTIVE' },
  { id: 'agent-breaker', name: 'breaker', displayName: 'Breaker', role: 'WORKER', capabilities: [], status: 'ACTIVE' },
  { id: 'agent-talker', name: 'talker', displayName: 'Talker', role: 'WORKER', capabilities: [], status: 'ACTIVE' },
];

interface FleetCall {
  tool: string;
  args: Record<string, unknown>;
  /** Whether the call asked for progress (the fleet sent one before answering). */
  progress: boolean;
}

interface FleetStandIn {
  url: string;
  calls: FleetCall[];
  /** Every Authorization header received, in order. */
  authorizations: string[];
  /** The JSON-RPC method of every request with a valid token, in order. */
  methods: string[];
  /** With `holdInitialized`: how the 202 to `notifications/initialized` was let go. */
  initializedAnswered?: 'after a tool call' | 'timed out';
  /** The most delegate calls in flight at once. */
  maxInFlight: number;
  /** Delegate calls whose caller went away before the answer (the request's handler was aborted). */
  aborted: number;
  close(): Promise<void>;
}

let children = 0;

/** What the stand-in's children answer: `breaker` fails, the others echo the prompt. */
function childResult(agent: string, prompt: string, wait: boolean): DelegateResult {
  const executionId = `child-${++children}`;
  if (!wait) return { executionId, status: 'PENDING', output: null };
  if (agent === 'breaker') return { executionId, status: 'FAILED', output: 'half done', error: 'the breaker broke' };
  if (agent === 'talker') return { executionId, status: 'COMPLETED', output: `${'blah '.repeat(5000)}the end` };
  return { executionId, status: 'COMPLETED', output: `${agent} did: ${prompt}` };
}

async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/**
 * Starts the stand-in. `together`: each delegate call is answered only once that many are in
 * flight at once (or after a generous wait), so a test sees whether an engine runs them in parallel.
 */
async function startFleet(options: { together?: number; hold?: boolean; holdInitialized?: boolean } = {}): Promise<FleetStandIn> {
  let inFlight = 0;
  const state: FleetStandIn = {
    url: '',
    calls: [],
    authorizations: [],
    methods: [],
    maxInFlight: 0,
    aborted: 0,
    close: async () => undefined,
  };
  const build = () => {
    const mcp = new McpServer({ name: 'mcp-fleet', version: '0.0.0-stand-in' });
    mcp.registerTool(
      'list_subordinates',
      { description: 'Direct subordinates of the run’s agent', inputSchema: {} },
      async (): Promise<CallToolResult> => {
        state.calls.push({ tool: 'list_subordinates', args: {}, progress: false });
        const value = { subordinates: SUBORDINATES };
        return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value };
      },
    );
    mcp.registerTool(
      'delegate',
      {
        description: 'Hands a prompt to a direct subordinate as a child run',
        inputSchema: {
          agent: z.string(),
          prompt: z.string(),
          context: z.record(z.string(), z.unknown()).optional(),
          wait: z.boolean().optional(),
        },
      },
      async (args, extra): Promise<CallToolResult> => {
        const progressToken = extra._meta?.progressToken;
        state.calls.push({ tool: 'delegate', args, progress: progressToken !== undefined });
        if (!SUBORDINATES.some((s) => s.name === args.agent || s.id === args.agent)) {
          return {
            isError: true,
            content: [{ type: 'text', text: `agent "${args.agent}" is not a direct subordinate of this run's agent` }],
          };
        }
        inFlight++;
        state.maxInFlight = Math.max(state.maxInFlight, inFlight);
        try {
          if (progressToken !== undefined)
            await extra.sendNotification({
              method: 'notifications/progress',
              params: { progressToken, progress: 1, message: 'status: RUNNING' },
            });
          if (options.together) await waitFor(() => state.maxInFlight >= options.together!);
          if (options.hold) {
            // A child that runs until its parent goes away.
            await new Promise<void>((resolve) => extra.signal.addEventListener('abort', () => resolve(), { once: true }));
            state.aborted++;
            return { isError: true, content: [{ type: 'text', text: 'the caller went away' }] };
          }
          const value = childResult(args.agent, args.prompt, args.wait !== false);
          return {
            content: [{ type: 'text', text: JSON.stringify(value) }],
            structuredContent: value as unknown as Record<string, unknown>,
          };
        } finally {
          inFlight--;
        }
      },
    );
    return mcp;
  };
  const server: Server = createServer((req, res) => {
    void (async () => {
      state.authorizations.push(req.headers.authorization ?? '');
      if (req.headers.authorization !== `Bearer ${RUN_TOKEN}`) {
        req.resume();
        return sendJson(res, 401, { error: 'unauthorized' });
      }
      if (req.method !== 'POST') {
        req.resume();
        return sendJson(res, 405, { jsonrpc: '2.0', error: { code: -32000, message: 'Method not allowed.' }, id: null }, { allow: 'POST' });
      }
      const parsed = await readJsonBody(req, res);
      if (!parsed) return;
      const method = String((parsed.body as { method?: unknown }).method);
      state.methods.push(method);
      if (method === 'notifications/initialized' && options.holdInitialized) {
        // Answered only once a tool call came in: a client that waits for this 202 never sends one.
        const called = await waitFor(() => state.methods.includes('tools/call'), 5_000);
        state.initializedAnswered = called ? 'after a tool call' : 'timed out';
      }
      const mcp = build();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => {
        void transport.close();
        void mcp.close();
      });
      await mcp.connect(transport);
      await transport.handleRequest(req, res, parsed.body);
    })().catch((error: unknown) => sendJson(res, 500, { error: String(error) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  fleets.push(state);
  return state;
}

// ---------------------------------------------------------------------------------------------
// A host and its client
// ---------------------------------------------------------------------------------------------

const hosts: AgentHost[] = [];
const clients: Client[] = [];
const fleets: FleetStandIn[] = [];
const dirs: string[] = [];
const models: OpenAIStandIn[] = [];

afterEach(async () => {
  await Promise.allSettled(models.splice(0).map((model) => model.close()));
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
  await Promise.allSettled(fleets.splice(0).map((fleet) => fleet.close()));
  await Promise.allSettled(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'delegation-'));
  dirs.push(dir);
  return dir;
}

interface Connection {
  host: AgentHost;
  client: Client;
  messages: HostMessage[];
  workspaceRoot: string;
}

async function connect(options: Partial<AgentHostOptions>): Promise<Connection> {
  const workspaceRoot = await tempDir();
  const host = await startAgentHost({ token: 'delegation-test', engine: 'script', workspaceRoot, ...options });
  hosts.push(host);
  const client = new Client({ name: 'delegation-test', version: '0.0.0' });
  clients.push(client);
  const messages: HostMessage[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    messages.push(notification.params.data as HostMessage);
  });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
  );
  return { host, client, messages, workspaceRoot };
}

function fleetAccess(fleet: FleetStandIn, token = RUN_TOKEN): FleetAccess {
  return { url: fleet.url, token, expiresAt: new Date(Date.now() + 10 * 60_000).toISOString() };
}

let executions = 0;

async function execute(conn: Connection, prompt: string, extra: Record<string, unknown> = {}) {
  const executionId = `parent-${++executions}`;
  const result = (await conn.client.callTool(
    { name: 'execute_prompt', arguments: { executionId, agentId: 'agent-lead', agentName: 'Lead', prompt, ...extra } },
    undefined,
    { timeout: 60_000 },
  )) as CallToolResult;
  return { result, events: conn.messages.filter((m) => m.executionId === executionId) };
}

const textOf = (result: CallToolResult) => result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
const outputOf = (events: HostMessage[]) => events.map((e) => (e.type === 'output' ? e.text : '')).join('');
const toolEvents = (events: HostMessage[]) =>
  events.filter((e) => e.type === 'tool_call' || e.type === 'tool_result').map(({ executionId: _id, ...event }) => event);

// ---------------------------------------------------------------------------------------------
// script
// ---------------------------------------------------------------------------------------------

describe('the script engine’s [delegate:AGENT:PROMPT]', () => {
  it('reads delegations with their agent and a prompt of several words, brackets of the child’s own directives included', () => {
    expect(
      parseDirectives('plan [delegate:writer:write the intro [steps:2]] [delegate:lead-2:[delegate:w:deep [hang]]] [steps:1] done'),
    ).toEqual(
      expect.objectContaining({
        text: 'plan done',
        steps: 1,
        delegations: [
          { agent: 'writer', prompt: 'write the intro [steps:2]' },
          { agent: 'lead-2', prompt: '[delegate:w:deep [hang]]' },
        ],
      }),
    );
    // Not delegations: no prompt, no agent, never closed. They stay text.
    expect(parseDirectives('a [delegate:writer:] b [delegate::x] c [delegate:w:open').delegations).toBeUndefined();
    expect(parseDirectives('hello').delegations).toBeUndefined();
  });

  it('delegates to two subordinates in parallel, waits for both and prints each child’s output, as tool_call/tool_result events', async () => {
    const fleet = await startFleet({ together: 2 });
    const conn = await connect({ engine: 'script', stepDelayMs: 0 });
    const { result, events } = await execute(
      conn,
      '[delegate:writer:write the intro] [delegate:agent-reviewer:review it [steps:2]] then ship',
      {
        fleet: fleetAccess(fleet),
      },
    );
    expect(textOf(result)).not.toMatch(/refused|failed/);
    expect(result.isError).toBeFalsy();
    // Both calls were in flight at once: each waited for the other.
    expect(fleet.maxInFlight).toBe(2);
    expect(fleet.calls.map(({ tool, args, progress }) => ({ tool, args, progress }))).toEqual(
      expect.arrayContaining([
        { tool: 'delegate', args: { agent: 'writer', prompt: 'write the intro' }, progress: true },
        { tool: 'delegate', args: { agent: 'agent-reviewer', prompt: 'review it [steps:2]' }, progress: true },
      ]),
    );
    expect(fleet.authorizations.every((header) => header === `Bearer ${RUN_TOKEN}`)).toBe(true);
    const output = 'writer: writer did: write the intro\nagent-reviewer: agent-reviewer did: review it [steps:2]\n';
    expect(result.structuredContent).toMatchObject({ success: true, output: `${output}script engine: then ship` });
    expect(outputOf(events)).toBe(`${output}script engine: then ship`);
    expect(toolEvents(events)).toEqual(
      expect.arrayContaining([
        { type: 'tool_call', toolCallId: 'delegate-1', name: 'delegate', arguments: { agent: 'writer', prompt: 'write the intro' } },
        {
          type: 'tool_call',
          toolCallId: 'delegate-2',
          name: 'delegate',
          arguments: { agent: 'agent-reviewer', prompt: 'review it [steps:2]' },
        },
        {
          type: 'tool_result',
          toolCallId: 'delegate-1',
          name: 'delegate',
          result: { executionId: expect.any(String), status: 'COMPLETED', output: 'writer did: write the intro' },
        },
        {
          type: 'tool_result',
          toolCallId: 'delegate-2',
          name: 'delegate',
          result: { executionId: expect.any(String), status: 'COMPLETED', output: 'agent-reviewer did: review it [steps:2]' },
        },
      ]),
    );
    expect(toolEvents(events)).toHaveLength(4);
    expect(JSON.stringify([result, conn.messages])).not.toContain(RUN_TOKEN);
  });

  it('has the run’s fleet connection opened by the host as the run arrives, once, whether the run delegates or not', async () => {
    const fleet = await startFleet();
    const conn = await connect({ engine: 'script', stepDelayMs: 0 });
    // A run that never calls the fleet: the host shook hands anyway, before the engine ran.
    const quiet = await execute(conn, '[steps:1]', { fleet: fleetAccess(fleet) });
    expect(quiet.result.isError).toBeFalsy();
    expect(await waitFor(() => fleet.methods.includes('notifications/initialized'))).toBe(true);
    expect(fleet.methods).toEqual(['initialize', 'notifications/initialized']);
    // A run that delegates twice: one handshake for both calls.
    fleet.methods.length = 0;
    const busy = await execute(conn, '[delegate:writer:one] [delegate:reviewer:two]', { fleet: fleetAccess(fleet) });
    expect(busy.result.isError).toBeFalsy();
    expect(fleet.methods.filter((m) => m === 'initialize')).toHaveLength(1);
    expect(fleet.methods.filter((m) => m === 'tools/call')).toHaveLength(2);
  });

  it('sends its first call without waiting for the answer to notifications/initialized (the fleet is stateless)', async () => {
    const fleet = await startFleet({ holdInitialized: true });
    const conn = await connect({ engine: 'script', stepDelayMs: 0 });
    const { result } = await execute(conn, '[delegate:writer:quick]', { fleet: fleetAccess(fleet) });
    expect(result.isError).toBeFalsy();
    expect(await waitFor(() => fleet.initializedAnswered !== undefined)).toBe(true);
    expect(fleet.initializedAnswered).toBe('after a tool call');
  });

  it('shows a refusal and a failed child as tool_result errors, and fails the run with every reason once all have ended', async () => {
    const fleet = await startFleet();
    const conn = await connect({ engine: 'script', stepDelayMs: 0 });
    const { result, events } = await execute(conn, '[delegate:stranger:do it] [delegate:breaker:try] [delegate:writer:fine]', {
      fleet: fleetAccess(fleet),
    });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toMatch(
      /^delegate to stranger refused: agent "stranger" is not a direct subordinate of this run's agent; delegate to breaker failed: the child run child-\d+ ended FAILED: the breaker broke$/,
    );
    expect(toolEvents(events).filter((e) => e.type === 'tool_result')).toEqual(
      expect.arrayContaining([
        {
          type: 'tool_result',
          toolCallId: 'delegate-1',
          name: 'delegate',
          result: { error: `agent "stranger" is not a direct subordinate of this run's agent` },
        },
        {
          type: 'tool_result',
          toolCallId: 'delegate-2',
          name: 'delegate',
          result: expect.objectContaining({ status: 'FAILED', error: 'the breaker broke' }),
        },
      ]),
    );
    // What the children printed is shown all the same.
    expect(outputOf(events)).toBe('breaker: half done\nwriter: writer did: fine\n');
    expect(fleet.calls.filter((c) => c.tool === 'delegate')).toHaveLength(3);
  });

  it('stops waiting for its children when the run is cancelled: the fleet sees the call go away', async () => {
    const fleet = await startFleet({ hold: true });
    const conn = await connect({ engine: 'script', stepDelayMs: 0 });
    const controller = new AbortController();
    const call = conn.client.callTool(
      {
        name: 'execute_prompt',
        arguments: {
          executionId: 'cancelled-1',
          agentId: 'agent-lead',
          agentName: 'Lead',
          prompt: '[delegate:writer:take your time]',
          fleet: fleetAccess(fleet),
        },
      },
      undefined,
      { signal: controller.signal },
    );
    expect(await waitFor(() => fleet.calls.length === 1)).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow();
    await conn.host.waitForCancellation('cancelled-1');
    // The run ended, and with it the call to the fleet.
    expect(await waitFor(() => conn.host.running() === 0 && fleet.aborted === 1)).toBe(true);
  });

  it('says why without fleet access or with a token the fleet refuses, and never shows the token', async () => {
    const fleet = await startFleet();
    const conn = await connect({ engine: 'script', stepDelayMs: 0 });
    const none = await execute(conn, '[delegate:writer:hi]');
    expect(none.result.isError).toBe(true);
    expect(textOf(none.result)).toBe(`delegate to writer refused: ${NO_FLEET_ACCESS}`);
    expect(toolEvents(none.events)).toContainEqual({
      type: 'tool_result',
      toolCallId: 'delegate-1',
      name: 'delegate',
      result: { error: NO_FLEET_ACCESS },
    });

    const forged = await execute(conn, '[delegate:writer:hi]', { fleet: fleetAccess(fleet, 'mcpr_forged-token-7') });
    expect(forged.result.isError).toBe(true);
    expect(textOf(forged.result)).toBe(
      "delegate to writer refused: the fleet refused this run's token (HTTP 401): the run has ended or its token has expired",
    );
    expect(fleet.calls).toHaveLength(0);
    expect(JSON.stringify([forged.result, conn.messages])).not.toContain('mcpr_forged-token-7');

    // An expiry the host cannot read leaves the waiting to the fleet: the call is not cut short.
    const unreadable = await execute(conn, '[delegate:writer:hi]', { fleet: { ...fleetAccess(fleet), expiresAt: 'when the run ends' } });
    expect(unreadable.result.structuredContent).toEqual({ success: true, output: 'writer: writer did: hi\nscript engine: ' });
    fleet.calls.length = 0;

    // A run with fleet access and no delegation is the run it always was: no tool of the fleet is
    // called (the host only opened the connection as the run arrived).
    const plain = await execute(conn, 'just echo', { fleet: fleetAccess(fleet) });
    expect(plain.result.structuredContent).toEqual({ success: true, output: 'script engine: just echo' });
    expect(fleet.calls).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------------------
// shell
// ---------------------------------------------------------------------------------------------

describe('the shell engine’s @delegate line', () => {
  it('reads `@delegate <agent>: <prompt>` lines, with or without a leading `-`', () => {
    expect(
      parseRunbook('# Draft\n@delegate writer: draft the intro: short\n-@delegate  agent-2 :  try\n@delegate writer').commands,
    ).toEqual([
      {
        line: 2,
        command: '@delegate writer: draft the intro: short',
        tolerateFailure: false,
        item: 0,
        delegate: { agent: 'writer', prompt: 'draft the intro: short' },
      },
      { line: 3, command: '@delegate  agent-2 :  try', tolerateFailure: true, item: 0, delegate: { agent: 'agent-2', prompt: 'try' } },
      { line: 4, command: '@delegate writer', tolerateFailure: false, item: 0 },
    ]);
  });

  it('waits for each child in turn and prints its output between the commands; a `-` line’s failed child is tolerated', async () => {
    const fleet = await startFleet();
    const conn = await connect({ engine: 'shell', allowCommands: true });
    const { result, events } = await execute(
      conn,
      ['# Draft', 'echo before', '@delegate writer: draft the intro, in two lines', '-@delegate breaker: try it', 'echo after'].join('\n'),
      { fleet: fleetAccess(fleet), allowedTools: ['echo'] },
    );
    expect(textOf(result)).not.toMatch(/failed|refused/);
    const output = 'before\nwriter did: draft the intro, in two lines\nhalf done\nafter\n';
    expect(result.structuredContent).toEqual({ success: true, output });
    expect(outputOf(events)).toBe(output);
    expect(fleet.calls.map((call) => call.args)).toEqual([
      { agent: 'writer', prompt: 'draft the intro, in two lines' },
      { agent: 'breaker', prompt: 'try it' },
    ]);
    expect(toolEvents(events).filter((e) => e.name === 'delegate')).toEqual([
      {
        type: 'tool_call',
        toolCallId: 'line-3',
        name: 'delegate',
        arguments: { agent: 'writer', prompt: 'draft the intro, in two lines' },
      },
      {
        type: 'tool_result',
        toolCallId: 'line-3',
        name: 'delegate',
        result: { executionId: expect.any(String), status: 'COMPLETED', output: 'writer did: draft the intro, in two lines' },
      },
      { type: 'tool_call', toolCallId: 'line-4', name: 'delegate', arguments: { agent: 'breaker', prompt: 'try it' } },
      {
        type: 'tool_result',
        toolCallId: 'line-4',
        name: 'delegate',
        result: { executionId: expect.any(String), status: 'FAILED', output: 'half done', error: 'the breaker broke' },
      },
    ]);
    expect(events.filter((e) => e.type === 'todo').at(-1)).toMatchObject({ todos: [{ content: 'Draft', status: 'completed' }] });
    expect(JSON.stringify([result, conn.messages])).not.toContain(RUN_TOKEN);
  });

  it('fails the runbook at a refused delegation or a failed child, as at a failed command, and at a misspelt @delegate line', async () => {
    const fleet = await startFleet();
    const conn = await connect({ engine: 'shell', allowCommands: true });
    const options = { fleet: fleetAccess(fleet), allowedTools: ['echo'] };

    const refused = await execute(conn, '# Ask\n-@delegate stranger: do it\necho never', options);
    expect(refused.result.isError).toBe(true);
    expect(textOf(refused.result)).toBe(
      `line 2: \`@delegate stranger: do it\` refused: agent "stranger" is not a direct subordinate of this run's agent`,
    );
    expect(toolEvents(refused.events).at(-1)).toEqual({
      type: 'tool_result',
      toolCallId: 'line-2',
      name: 'delegate',
      result: { error: `agent "stranger" is not a direct subordinate of this run's agent` },
    });
    expect(refused.events.filter((e) => e.type === 'todo').at(-1)).toMatchObject({
      todos: [{ content: 'Ask (failed: refused)', status: 'in_progress' }],
    });
    expect(outputOf(refused.events)).toBe('');

    const failed = await execute(conn, '@delegate breaker: try\necho never', options);
    expect(failed.result.isError).toBe(true);
    expect(textOf(failed.result)).toMatch(
      /^line 1: `@delegate breaker: try` failed: the child run child-\d+ ended FAILED: the breaker broke$/,
    );
    expect(outputOf(failed.events)).toBe('half done\n');

    const misspelt = await execute(conn, 'echo first\n@delegate writer draft it', options);
    expect(textOf(misspelt.result)).toBe(
      'line 2: `@delegate writer draft it` is not a runbook line: a delegation is written `@delegate <agent>: <prompt>`',
    );
    // Nothing ran: the runbook is read whole first.
    expect(outputOf(misspelt.events)).toBe('');
    expect(fleet.calls.map((call) => call.args.agent)).toEqual(['stranger', 'breaker']);
  });
});

// ---------------------------------------------------------------------------------------------
// openai
// ---------------------------------------------------------------------------------------------

describe('the openai engine’s delegate and list_subordinates tools', () => {
  type Tool = { type: string; function: { name: string } };
  const toolNames = (body: Record<string, unknown>) => ((body.tools ?? []) as Tool[]).map((tool) => tool.function.name);

  async function openaiHost(): Promise<{ conn: Connection; model: OpenAIStandIn }> {
    const model = await startOpenAIStandIn();
    models.push(model);
    const conn = await connect({
      engine: 'openai',
      allowCommands: true,
      env: { HOST_OPENAI_BASE_URL: model.baseUrl, HOST_OPENAI_API_KEY: 'sk-stand-in', HOST_OPENAI_MODEL: 'stand-in-model' },
    });
    return { conn, model };
  }

  it('are offered with fleet access; the model’s delegate calls of a turn run in parallel and their results go back as tool messages', async () => {
    const fleet = await startFleet({ together: 2 });
    const { conn, model } = await openaiHost();
    model.replies.push(
      streamed([
        ...toolCallChunks([
          { id: 'call_list', name: 'list_subordinates', arguments: {} },
          { id: 'call_writer', name: 'delegate', arguments: { agent: 'writer', prompt: 'Draft the intro', context: { words: 100 } } },
          { id: 'call_reviewer', name: 'delegate', arguments: { agent: 'agent-reviewer', prompt: 'List the risks' } },
          { id: 'call_stranger', name: 'delegate', arguments: { agent: 'stranger', prompt: 'Anything' } },
        ]),
        usageChunk(10, 10),
      ]),
      streamed([...textChunks(['Both answered.']), usageChunk(20, 5)]),
    );
    const { result, events } = await execute(conn, 'Get the report written', { fleet: fleetAccess(fleet) });
    expect(textOf(result)).toBe('Both answered.');
    expect(result.isError).toBeFalsy();

    const [first, second] = model.requests;
    expect(toolNames(first!.body)).toEqual(['read_file', 'write_file', 'update_todos', 'list_subordinates', 'delegate']);
    expect((first!.body.messages as { content: string }[])[0]!.content).toContain('list_subordinates names them');
    expect(fleet.maxInFlight).toBe(2);
    expect(fleet.calls.map(({ tool, args }) => ({ tool, args }))).toEqual(
      expect.arrayContaining([
        { tool: 'list_subordinates', args: {} },
        { tool: 'delegate', args: { agent: 'writer', prompt: 'Draft the intro', context: { words: 100 } } },
        { tool: 'delegate', args: { agent: 'agent-reviewer', prompt: 'List the risks' } },
        { tool: 'delegate', args: { agent: 'stranger', prompt: 'Anything' } },
      ]),
    );
    // The tool messages follow the calls' order, whatever order the children ended in.
    const toolMessages = (second!.body.messages as { role: string; tool_call_id?: string; content: string }[]).filter(
      (m) => m.role === 'tool',
    );
    expect(toolMessages.map((m) => m.tool_call_id)).toEqual(['call_list', 'call_writer', 'call_reviewer', 'call_stranger']);
    expect(JSON.parse(toolMessages[0]!.content)).toEqual(SUBORDINATES);
    expect(JSON.parse(toolMessages[1]!.content)).toEqual({
      executionId: expect.any(String),
      status: 'COMPLETED',
      output: 'writer did: Draft the intro',
    });
    expect(JSON.parse(toolMessages[2]!.content)).toMatchObject({ status: 'COMPLETED', output: 'agent-reviewer did: List the risks' });
    expect(toolMessages[3]!.content).toBe(`error: refused: agent "stranger" is not a direct subordinate of this run's agent`);

    expect(toolEvents(events)).toEqual(
      expect.arrayContaining([
        { type: 'tool_call', toolCallId: 'call_list', name: 'list_subordinates', arguments: {} },
        { type: 'tool_result', toolCallId: 'call_list', name: 'list_subordinates', result: { subordinates: SUBORDINATES } },
        {
          type: 'tool_call',
          toolCallId: 'call_writer',
          name: 'delegate',
          arguments: { agent: 'writer', prompt: 'Draft the intro', context: { words: 100 } },
        },
        {
          type: 'tool_result',
          toolCallId: 'call_writer',
          name: 'delegate',
          result: { executionId: expect.any(String), status: 'COMPLETED', output: 'writer did: Draft the intro' },
        },
        {
          type: 'tool_result',
          toolCallId: 'call_stranger',
          name: 'delegate',
          result: { error: `agent "stranger" is not a direct subordinate of this run's agent` },
        },
      ]),
    );
    expect(toolEvents(events)).toHaveLength(8);
    expect(JSON.stringify([result, conn.messages, model.requests])).not.toContain(RUN_TOKEN);
  });

  it('gives the model the end of a long child output, as of a long command output, and the whole length', async () => {
    const fleet = await startFleet();
    const { conn, model } = await openaiHost();
    model.replies.push(
      streamed(toolCallChunks([{ id: 'call_talker', name: 'delegate', arguments: { agent: 'talker', prompt: 'Say a lot' } }])),
      streamed(textChunks(['Heard it.'])),
    );
    const { result, events } = await execute(conn, 'Listen', { fleet: fleetAccess(fleet) });
    expect(textOf(result)).toBe('Heard it.');
    const toolMessage = (model.requests[1]!.body.messages as { role: string; content: string }[]).find((m) => m.role === 'tool')!;
    const answer = JSON.parse(toolMessage.content) as { output: string; outputChars: number; status: string };
    expect(answer).toMatchObject({ status: 'COMPLETED', outputChars: 25_007 });
    expect(answer.output).toHaveLength(16 * 1024 + 1);
    expect(answer.output.endsWith('blah the end')).toBe(true);
    // The event shows its start, cut at RESULT_OUTPUT_CHARS.
    const shown = toolEvents(events).find((e) => e.type === 'tool_result') as { result: { output: string; outputChars: number } };
    expect(shown.result).toMatchObject({ outputChars: 25_007 });
    expect(shown.result.output).toHaveLength(RESULT_OUTPUT_CHARS + 1);
  });
});

// ---------------------------------------------------------------------------------------------
// claude-code
// ---------------------------------------------------------------------------------------------

/**
 * A `claude` for these tests that does with `--mcp-config` what the CLI does: reads the file,
 * connects to its `fleet` server over Streamable HTTP with the configured headers (the SDK's
 * client), and calls `delegate` for the agent named at the start of the prompt (`AGENT: PROMPT`)
 * when the allowed tools let it, streaming the tool use, its result and a final answer in the
 * CLI's stream-json format. It records what it was started with (argv, the config and its
 * mode) outside the workspace.
 */
function scriptedCli(record: string): string {
  const sdk = (module: string) => JSON.stringify(require.resolve(`@modelcontextprotocol/sdk/${module}`));
  return `#!${process.execPath}
const { appendFileSync, readFileSync, statSync } = require('node:fs');
const { Client } = require(${sdk('client/index.js')});
const { StreamableHTTPClientTransport } = require(${sdk('client/streamableHttp.js')});
const print = (message) => new Promise((resolve) => process.stdout.write(JSON.stringify(message) + '\\n', resolve));
const turn = (content) => ({ type: 'assistant', session_id: 's1', parent_tool_use_id: null, message: { id: 'msg', type: 'message', role: 'assistant', content, usage: { input_tokens: 1, output_tokens: 1 } } });
(async () => {
  const argv = process.argv.slice(2);
  if (argv.includes('--version')) return void process.stdout.write('2.0.14 (Claude Code)\\n');
  const at = argv.indexOf('--mcp-config');
  const configFile = at >= 0 ? argv[at + 1] : undefined;
  const config = configFile ? JSON.parse(readFileSync(configFile, 'utf8')) : undefined;
  const allowed = argv.slice(argv.indexOf('--allowedTools') + 1, argv.indexOf('--disallowedTools'));
  appendFileSync(${JSON.stringify(record)}, JSON.stringify({ argv, env: process.env, configFile, config, mode: configFile ? statSync(configFile).mode & 0o777 : undefined }) + '\\n');
  await print({ type: 'system', subtype: 'init', session_id: 's1', cwd: process.cwd(), model: 'claude-stand-in', mcp_servers: config ? [{ name: 'fleet', status: 'connected' }] : [] });
  const [agent, ...words] = argv[argv.indexOf('--') + 1].split(':');
  let answer = 'I have nobody to delegate to.';
  const server = config && config.mcpServers.fleet;
  if (server && allowed.includes('mcp__fleet__delegate')) {
    const client = new Client({ name: 'claude-code', version: '2.0.14' });
    await client.connect(new StreamableHTTPClientTransport(new URL(server.url), { requestInit: { headers: server.headers } }));
    const input = { agent, prompt: words.join(':').trim() };
    await print(turn([{ type: 'tool_use', id: 'toolu_fleet_1', name: 'mcp__fleet__delegate', input }]));
    const result = await client.callTool({ name: 'delegate', arguments: input });
    await print({ type: 'user', session_id: 's1', parent_tool_use_id: null, message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_fleet_1', content: result.content, is_error: result.isError === true }] } });
    answer = result.isError ? 'The fleet said no.' : 'The ' + agent + ' answered: ' + result.structuredContent.output;
    await client.close();
  }
  await print(turn([{ type: 'text', text: answer }]));
  await print({ type: 'result', subtype: 'success', is_error: false, result: answer, num_turns: 2, usage: { input_tokens: 10, output_tokens: 5 } });
})().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exitCode = 1;
});
`;
}

describe('the claude-code engine with fleet access', () => {
  interface Start {
    argv: string[];
    env: Record<string, string>;
    configFile?: string;
    config?: { mcpServers: Record<string, { type: string; url: string; headers: Record<string, string> }> };
    mode?: number;
  }

  async function claudeHost(): Promise<{ conn: Connection; starts: () => Promise<Start[]> }> {
    const dir = await tempDir();
    const bin = path.join(dir, 'bin');
    const record = path.join(dir, 'cli-record.jsonl');
    await mkdir(bin);
    await writeFile(path.join(bin, 'claude'), scriptedCli(record), { mode: 0o755 });
    const conn = await connect({
      engine: 'claude-code',
      allowCommands: true,
      sandbox: { mode: 'off' },
      env: { PATH: `${bin}:/usr/bin:/bin`, HOST_TOKEN: 'the-host-secret' },
    });
    const starts = async () =>
      (await readFile(record, 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Start);
    return { conn, starts };
  }

  /** Every file under `dir`, with its content. */
  async function filesUnder(dir: string): Promise<Record<string, string>> {
    const files: Record<string, string> = {};
    for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      const file = path.join(entry.parentPath, entry.name);
      files[file] = await readFile(file, 'utf8');
    }
    return files;
  }

  it('gives the CLI the fleet as an MCP server in a private --mcp-config file outside the workspace, allows its tools, and the CLI delegates', async () => {
    const fleet = await startFleet();
    const { conn, starts } = await claudeHost();
    const { result, events } = await execute(conn, 'writer: draft the intro', { fleet: fleetAccess(fleet), allowedTools: ['echo'] });
    expect(textOf(result)).toBe('The writer answered: writer did: draft the intro');
    expect(result.isError).toBeFalsy();

    const [start] = await starts();
    const { argv, configFile, config, mode } = start!;
    expect(argv.slice(argv.indexOf('--mcp-config'), argv.indexOf('--mcp-config') + 2)).toEqual(['--mcp-config', configFile]);
    expect(config).toEqual({ mcpServers: { fleet: { type: 'http', url: fleet.url, headers: { Authorization: `Bearer ${RUN_TOKEN}` } } } });
    expect(mode).toBe(0o600);
    const workspace = path.join(conn.workspaceRoot, 'agent-lead');
    expect(path.relative(workspace, configFile!).startsWith('..')).toBe(true);
    expect(path.relative(conn.workspaceRoot, configFile!).startsWith('..')).toBe(true);
    const allowed = argv.slice(argv.indexOf('--allowedTools') + 1, argv.indexOf('--disallowedTools'));
    expect(allowed).toEqual(expect.arrayContaining(['mcp__fleet__delegate', 'mcp__fleet__list_subordinates', 'Bash(echo *)']));
    expect(argv[argv.indexOf('--append-system-prompt') + 1]).toContain('mcp__fleet__delegate');
    // The token is in the file only: not in argv, the CLI's environment or the workspace; the file is gone with the run.
    expect(JSON.stringify([argv, start!.env])).not.toContain(RUN_TOKEN);
    expect(JSON.stringify(await filesUnder(conn.workspaceRoot))).not.toContain(RUN_TOKEN);
    await expect(readFile(configFile!)).rejects.toMatchObject({ code: 'ENOENT' });

    // The CLI's own call reached the fleet with the run's token.
    expect(fleet.calls.map(({ tool, args }) => ({ tool, args }))).toEqual([
      { tool: 'delegate', args: { agent: 'writer', prompt: 'draft the intro' } },
    ]);
    expect(fleet.authorizations.every((header) => header === `Bearer ${RUN_TOKEN}`)).toBe(true);
    expect(toolEvents(events)).toEqual([
      {
        type: 'tool_call',
        toolCallId: 'toolu_fleet_1',
        name: 'mcp__fleet__delegate',
        arguments: { agent: 'writer', prompt: 'draft the intro' },
      },
      {
        type: 'tool_result',
        toolCallId: 'toolu_fleet_1',
        name: 'mcp__fleet__delegate',
        result: { output: expect.stringContaining('"output":"writer did: draft the intro"') },
      },
    ]);
    expect(JSON.stringify([result, conn.messages])).not.toContain(RUN_TOKEN);
  });

  it('gives a run without fleet access no --mcp-config and no fleet tools', async () => {
    const { conn, starts } = await claudeHost();
    const { result } = await execute(conn, 'writer: draft the intro', { allowedTools: ['echo'] });
    expect(textOf(result)).toBe('I have nobody to delegate to.');
    const [start] = await starts();
    expect(start!.argv).not.toContain('--mcp-config');
    expect(start!.argv.filter((arg) => arg.startsWith('mcp__'))).toEqual([]);
    expect(start!.argv[start!.argv.indexOf('--append-system-prompt') + 1]).not.toContain('mcp__fleet');
  });
});

describe('the claude-code engine with fleet access, in the host’s sandbox', () => {
  /**
   * A `claude` that needs nothing but node (the sandbox shows little else): it reads its
   * --mcp-config and reaches the fleet's endpoint as a program in the sandbox can, through the
   * host's proxy (HTTP_PROXY), with the configured headers, recording into the workspace (the
   * only writable place) what it could read and the HTTP status it got, but not the token.
   */
  function sandboxedCli(record: string): string {
    return `#!${process.execPath}
const { appendFileSync, readFileSync } = require('node:fs');
const http = require('node:http');
const print = (message) => new Promise((resolve) => process.stdout.write(JSON.stringify(message) + '\\n', resolve));
(async () => {
  const argv = process.argv.slice(2);
  if (argv.includes('--version')) return void process.stdout.write('2.0.14 (Claude Code)\\n');
  const configFile = argv[argv.indexOf('--mcp-config') + 1];
  let server;
  try {
    server = JSON.parse(readFileSync(configFile, 'utf8')).mcpServers.fleet;
  } catch {}
  const status = !server ? undefined : await new Promise((resolve) => {
    const proxy = new URL(process.env.HTTP_PROXY);
    const request = http.request(
      { host: proxy.hostname, port: proxy.port, path: server.url, method: 'POST', headers: { ...server.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' } },
      (response) => { response.resume(); resolve(response.statusCode); },
    );
    request.on('error', (error) => resolve(String(error)));
    request.end(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'claude-code', version: '2.0.14' } } }));
  });
  appendFileSync(${JSON.stringify(record)}, JSON.stringify({ uid: process.getuid(), configFile, readable: server !== undefined, url: server && server.url, status }) + '\\n');
  await print({ type: 'system', subtype: 'init', session_id: 's1', cwd: process.cwd() });
  await print({ type: 'result', subtype: 'success', is_error: false, result: 'fleet answered ' + status });
})().catch((error) => {
  process.stderr.write(String(error && error.stack || error));
  process.exitCode = 1;
});
`;
  }

  it('shows the CLI its --mcp-config read-only and lets it reach the fleet’s endpoint through the proxy', async () => {
    const fleet = await startFleet();
    const dir = await tempDir();
    // Where the sandbox's user can reach the CLI.
    await chmod(dir, 0o755);
    const bin = path.join(dir, 'bin');
    await mkdir(bin, { mode: 0o755 });
    const workspaceRoot = path.join(dir, 'workspaces');
    const record = path.join(workspaceRoot, 'agent-lead', 'cli-record.jsonl');
    await writeFile(path.join(bin, 'claude'), sandboxedCli(record), { mode: 0o755 });
    const conn = await connect({
      engine: 'claude-code',
      allowCommands: true,
      workspaceRoot,
      sandbox: {},
      env: { PATH: `${bin}:/usr/bin:/bin`, HOST_TOKEN: 'the-host-secret' },
    });
    const { result } = await execute(conn, 'writer: draft it', { fleet: fleetAccess(fleet) });
    expect(textOf(result)).toBe('fleet answered 200');
    const [start] = (await readFile(record, 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(start).toEqual({ uid: expect.any(Number), configFile: expect.any(String), readable: true, url: fleet.url, status: 200 });
    expect(start!.uid).not.toBe(0);
    // The fleet got the CLI's request with the run's token; the file is gone with the run, and the token was never in the workspace.
    expect(fleet.authorizations).toEqual([`Bearer ${RUN_TOKEN}`]);
    await expect(readFile(start!.configFile as string)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(record, 'utf8')).not.toContain(RUN_TOKEN);
  });
});
