/**
 * The openai engine on a real reference host, driven by the official MCP SDK client, against an
 * OpenAI-compatible stand-in started by this test on a loopback port (test/openai-stand-in.ts:
 * no internet). The stand-in replays completions in the documented Chat Completions streaming
 * format (text deltas, tool calls split across chunks, usage, errors, a malformed chunk).
 * Commands the model asks for really run through the host's runner in the agent's workspace.
 */
import { mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { HostMessage } from '../../lib/host-contract';
import { createSandbox } from '../sandbox';
import { DEFAULT_SANDBOX_SETTINGS } from '../sandbox-settings';
import { startAgentHost, type AgentHost, type AgentHostOptions } from '../server';
import {
  chunk,
  failure,
  startOpenAIStandIn,
  streamed,
  textChunks,
  toolCallChunks,
  usageChunk,
  writeEvents,
  type OpenAIStandIn,
} from '../../test/openai-stand-in';
import { createOpenAIEngine } from './openai';

const API_KEY = 'sk-stand-in-secret-4242';
const MODEL = 'stand-in-model';

const hosts: AgentHost[] = [];
const clients: Client[] = [];
const standIns: OpenAIStandIn[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
  await Promise.allSettled(standIns.splice(0).map((standIn) => standIn.close()));
  await Promise.allSettled(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'openai-engine-'));
  dirs.push(dir);
  return dir;
}

async function standIn(): Promise<OpenAIStandIn> {
  const started = await startOpenAIStandIn();
  standIns.push(started);
  return started;
}

function openaiEnv(baseUrl: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  // eslint-disable-next-line no-restricted-properties -- the test host's agents find node and ls where this process does
  return { PATH: process.env.PATH, HOST_OPENAI_BASE_URL: baseUrl, HOST_OPENAI_API_KEY: API_KEY, HOST_OPENAI_MODEL: MODEL, ...extra };
}

interface Connection {
  host: AgentHost;
  client: Client;
  workspaceRoot: string;
  messages: HostMessage[];
}

async function connect(
  baseUrl: string,
  options: Partial<AgentHostOptions> & { extraEnv?: Record<string, string> } = {},
): Promise<Connection> {
  const workspaceRoot = await tempDir();
  const { extraEnv, ...hostOptions } = options;
  const host = await startAgentHost({
    token: 'openai-test-token',
    engine: 'openai',
    allowCommands: true,
    workspaceRoot,
    env: openaiEnv(baseUrl, extraEnv),
    ...hostOptions,
  });
  hosts.push(host);
  const client = new Client({ name: 'openai-engine-test', version: '0.0.0' });
  clients.push(client);
  const messages: HostMessage[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    messages.push(notification.params.data as HostMessage);
  });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
  );
  return { host, client, workspaceRoot, messages };
}

async function execute(
  conn: Connection,
  executionId: string,
  prompt: string,
  extra: Record<string, unknown> = {},
  options?: RequestOptions,
): Promise<CallToolResult> {
  const args = { executionId, agentId: 'agent-1', agentName: 'Agent One', prompt, ...extra };
  return (await conn.client.callTool({ name: 'execute_prompt', arguments: args }, undefined, options)) as CallToolResult;
}

const textOf = (result: CallToolResult) => result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function joinOutputs(messages: HostMessage[]): HostMessage[] {
  const joined: HostMessage[] = [];
  for (const message of messages) {
    const last = joined.at(-1);
    if (message.type === 'output' && last?.type === 'output') joined[joined.length - 1] = { ...last, text: last.text + message.text };
    else joined.push(message);
  }
  return joined;
}

type Tool = { type: string; function: { name: string; description: string } };
const toolNames = (body: Record<string, unknown>) => ((body.tools ?? []) as Tool[]).map((tool) => tool.function.name);

describe('openai engine: settings', () => {
  const engine = (env: NodeJS.ProcessEnv) =>
    createOpenAIEngine({
      allowCommands: true,
      stepDelayMs: 0,
      shutdown: new AbortController().signal,
      env,
      sandbox: createSandbox({ ...DEFAULT_SANDBOX_SETTINGS, mode: 'off' }, { hidden: [], hostEnv: env }),
    });

  it('names what is missing or invalid at check(), without a network call', async () => {
    expect(await engine({}).check()).toBe(
      "the openai engine needs HOST_OPENAI_BASE_URL, HOST_OPENAI_API_KEY, HOST_OPENAI_MODEL (set in the host's environment)",
    );
    expect(await engine(openaiEnv('http://127.0.0.1:9/v1', { HOST_OPENAI_MODEL: ' ' })).check()).toMatch(/needs HOST_OPENAI_MODEL/);
    expect(await engine(openaiEnv('localhost:11434')).check()).toMatch(/HOST_OPENAI_BASE_URL must be an http\(s\) URL/);
    expect(await engine(openaiEnv('not a url')).check()).toMatch(/HOST_OPENAI_BASE_URL is not a URL/);
    expect(await engine(openaiEnv('http://127.0.0.1:9/v1', { HOST_OPENAI_MAX_TURNS: '0' })).check()).toMatch(
      /HOST_OPENAI_MAX_TURNS must be a positive whole number/,
    );
    expect(await engine(openaiEnv('http://127.0.0.1:9/v1')).check()).toBeUndefined();
  });
});

describe('openai engine on a real host', () => {
  it("streams the text deltas as output events while the answer is still coming, and counts the endpoint's tokens", async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    server.replies.push(async (res) => {
      writeEvents(res, textChunks(['Hello ', 'world.\n']).slice(0, 3), false);
      // The rest waits until the client has seen the first line: the output is live, not replayed at the end.
      await until(() => conn.messages.some((m) => m.type === 'output'));
      writeEvents(res, [chunk({ content: 'Bye.' }), chunk({}, 'stop'), usageChunk(12, 8)]);
    });
    const result = await execute(conn, 'text-1', 'Say hello', {
      context: { ticket: 12 },
      allowedTools: ['ls', { name: 'git', allowedCommands: ['status'], blockedCommands: [] }],
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toEqual({ success: true, output: 'Hello world.\nBye.', tokensUsed: 20 });
    const outputs = conn.messages.filter((m) => m.type === 'output');
    expect(outputs.map((m) => m.type === 'output' && m.text).join('')).toBe('Hello world.\nBye.');
    // The first line went out before the stand-in sent the rest (it waited for it).
    expect(outputs[0]).toMatchObject({ executionId: 'text-1', text: expect.stringMatching(/^Hello /) });

    const [request] = server.requests;
    expect(request!.path).toBe('/v1/chat/completions');
    expect(request!.authorization).toBe(`Bearer ${API_KEY}`);
    const body = request!.body;
    expect(body).toMatchObject({ model: MODEL, stream: true, stream_options: { include_usage: true } });
    expect(body.response_format).toBeUndefined();
    const messages = body.messages as { role: string; content: string }[];
    expect(messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(messages[0]!.content).toContain('Agent One');
    expect(messages[0]!.content).toContain(path.join(conn.workspaceRoot, 'agent-1'));
    expect(messages[1]!.content).toContain('Say hello');
    expect(messages[1]!.content).toContain('"ticket": 12');
    expect(toolNames(body)).toEqual(['run_command', 'read_file', 'write_file', 'update_todos']);
    const runCommand = (body.tools as Tool[])[0]!.function.description;
    expect(runCommand).toContain('Programs you may run: ls, git (only "git status").');
    // The key goes in the Authorization header, nowhere in what the client sees.
    expect(JSON.stringify([result, conn.messages])).not.toContain(API_KEY);
  });

  it('refuses to provision an engine:openai agent on a host without its settings', async () => {
    const conn = await connect('http://127.0.0.1:1/v1', { engine: 'script', env: {} });
    const refused = (await conn.client.callTool({
      name: 'provision_agent',
      arguments: { agentId: 'agent-x', name: 'X', role: 'WORKER', capabilities: ['engine:openai'] },
    })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toBe(
      "the openai engine cannot run agents on this host: the openai engine needs HOST_OPENAI_BASE_URL, HOST_OPENAI_API_KEY, HOST_OPENAI_MODEL (set in the host's environment)",
    );
  });

  it('offers run_command only to an agent with allowed tools on a host that runs commands', async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    const noCommands = await connect(server.baseUrl, { allowCommands: false });
    for (let i = 0; i < 3; i++) server.replies.push(streamed([...textChunks(['ok']), usageChunk(1, 1)]));
    expect((await execute(conn, 'none-1', 'hi')).isError).toBeFalsy();
    expect((await execute(conn, 'none-2', 'hi', { allowedTools: [] })).isError).toBeFalsy();
    expect((await execute(noCommands, 'none-3', 'hi', { allowedTools: ['ls'] })).isError).toBeFalsy();
    for (const request of server.requests) expect(toolNames(request.body)).toEqual(['read_file', 'write_file', 'update_todos']);
  });

  it("runs the model's tool calls for real, in the workspace, and hands each result back to the model", async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    const workspace = path.join(conn.workspaceRoot, 'agent-1');
    const outside = await tempDir();
    await writeFile(path.join(outside, 'secret.txt'), 'not for the agent');
    await mkdir(workspace, { recursive: true });
    await symlink(outside, path.join(workspace, 'elsewhere'));
    server.replies.push(
      streamed([
        chunk({ role: 'assistant', content: 'Working on it.' }),
        ...toolCallChunks([
          { id: 'call_todo', name: 'update_todos', arguments: { items: [{ title: 'Write the plan', status: 'in_progress' }] } },
          {
            id: 'call_node',
            name: 'run_command',
            arguments: { command: `node -e "require('fs').writeFileSync('made-by-node.txt', 'node was here')"` },
          },
          { id: 'call_rm', name: 'run_command', arguments: { command: 'rm -rf .' } },
          { id: 'call_write', name: 'write_file', arguments: { path: 'notes/plan.md', content: '# Plan\n' } },
          { id: 'call_rewrite', name: 'write_file', arguments: { path: 'notes/plan.md', content: '# Plan\n\n1. ship\n' } },
          { id: 'call_up', name: 'read_file', arguments: { path: '../../etc/passwd' } },
          { id: 'call_abs', name: 'write_file', arguments: { path: '/tmp/evil.txt', content: 'x' } },
          { id: 'call_link', name: 'read_file', arguments: { path: 'elsewhere/secret.txt' } },
          { id: 'call_read', name: 'read_file', arguments: { path: 'made-by-node.txt' } },
          { id: 'call_ls', name: 'run_command', arguments: { command: 'ls' } },
          {
            id: 'call_env',
            name: 'run_command',
            arguments: { command: `node -e "console.log(process.env.HOST_OPENAI_API_KEY || 'no key here')"` },
          },
        ]).slice(1),
        usageChunk(100, 20),
      ]),
      streamed([...textChunks(['All ', 'done.']), usageChunk(150, 10)]),
    );
    const result = await execute(conn, 'tools-1', 'Write a plan', { allowedTools: ['node', 'ls'] });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ success: true, tokensUsed: 280 });

    expect(await readFile(path.join(workspace, 'made-by-node.txt'), 'utf8')).toBe('node was here');
    expect(await readFile(path.join(workspace, 'notes/plan.md'), 'utf8')).toBe('# Plan\n\n1. ship\n');
    // What the host wrote is the agent's, like its workspace (the sandbox's user, on a root host): its commands can change it.
    const owner = await stat(workspace);
    for (const written of ['notes', 'notes/plan.md'])
      expect(await stat(path.join(workspace, written))).toMatchObject({ uid: owner.uid, gid: owner.gid });
    expect(await readFile(path.join(outside, 'secret.txt'), 'utf8')).toBe('not for the agent');

    // What went back to the model, call by call.
    const second = server.requests[1]!.body.messages as {
      role: string;
      content: string | null;
      tool_call_id?: string;
      tool_calls?: { id: string; function: { name: string; arguments: string } }[];
    }[];
    const assistant = second[2]!;
    expect(assistant).toMatchObject({ role: 'assistant', content: 'Working on it.' });
    expect(assistant.tool_calls!.map((call) => call.id)).toEqual([
      'call_todo',
      'call_node',
      'call_rm',
      'call_write',
      'call_rewrite',
      'call_up',
      'call_abs',
      'call_link',
      'call_read',
      'call_ls',
      'call_env',
    ]);
    expect(JSON.parse(assistant.tool_calls![3]!.function.arguments)).toEqual({ path: 'notes/plan.md', content: '# Plan\n' });
    const toolAnswer = Object.fromEntries(second.filter((m) => m.role === 'tool').map((m) => [m.tool_call_id, m.content]));
    expect(toolAnswer.call_node).toMatch(/^exit code 0/);
    expect(toolAnswer.call_rm).toBe("refused: rm is not among the agent's allowed tools. Nothing ran.");
    expect(toolAnswer.call_write).toBe('created notes/plan.md (7 bytes)');
    expect(toolAnswer.call_rewrite).toBe('modified notes/plan.md (16 bytes)');
    expect(toolAnswer.call_up).toMatch(/^error: .*goes up with "\.\."/);
    expect(toolAnswer.call_abs).toMatch(/^error: .*is absolute/);
    expect(toolAnswer.call_link).toMatch(/^error: .*leads out of the workspace/);
    expect(toolAnswer.call_read).toBe('node was here');
    expect(toolAnswer.call_ls).toContain('made-by-node.txt');
    expect(toolAnswer.call_ls).toContain('notes');
    // The agent's commands do not get the host's environment, where the API key is.
    expect(toolAnswer.call_env).toBe('exit code 0\nno key here\n');

    // The events, in order: each call and its result under the model's id, with what it did in between.
    // Consecutive output events are joined: how text is cut into events depends on timing.
    const events = joinOutputs(conn.messages).map((m) => {
      if (m.type === 'output') return `output ${m.text}`;
      if (m.type === 'todo') return `todo ${m.todos.map((t) => `${t.content}:${t.status}`).join()}`;
      if (m.type === 'file_change') return `file_change ${m.change} ${m.path}`;
      if (m.type === 'tool_call') return `tool_call ${m.toolCallId} ${m.name}`;
      const failed = m.result && typeof m.result === 'object' && 'error' in m.result ? ' error' : '';
      return `tool_result ${m.toolCallId} ${m.name}${failed}`;
    });
    expect(events).toEqual([
      'output Working on it.\n',
      'tool_call call_todo update_todos',
      'todo Write the plan:in_progress',
      'tool_result call_todo update_todos',
      'tool_call call_node node',
      'tool_result call_node node',
      'tool_call call_rm rm',
      'tool_result call_rm rm error',
      'tool_call call_write write_file',
      'file_change created notes/plan.md',
      'tool_result call_write write_file',
      'tool_call call_rewrite write_file',
      'file_change modified notes/plan.md',
      'tool_result call_rewrite write_file',
      'tool_call call_up read_file',
      'tool_result call_up read_file error',
      'tool_call call_abs write_file',
      'tool_result call_abs write_file error',
      'tool_call call_link read_file',
      'tool_result call_link read_file error',
      'tool_call call_read read_file',
      'tool_result call_read read_file',
      'tool_call call_ls ls',
      expect.stringMatching(/^output (.*\n)*made-by-node\.txt\nnotes\n$/),
      'tool_result call_ls ls',
      'tool_call call_env node',
      'output no key here\n',
      'tool_result call_env node',
      'output All done.',
    ]);
  });

  it('asks for the responseSchema and holds the answer to it', async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    const responseSchema = {
      title: 'Release note',
      type: 'object',
      properties: { title: { type: 'string' }, count: { type: 'integer' } },
      required: ['title', 'count'],
      additionalProperties: false,
    };
    server.replies.push(streamed(textChunks(['{"title":', '"v2", "count": 3}'])), streamed(textChunks(['{"title": 7}'])));
    const good = await execute(conn, 'schema-1', 'Describe the release', { responseSchema });
    expect(good.structuredContent).toEqual({ success: true, output: '{"title":"v2", "count": 3}', data: { title: 'v2', count: 3 } });
    expect(server.requests[0]!.body.response_format).toEqual({
      type: 'json_schema',
      json_schema: { name: 'Release_note', schema: responseSchema, strict: true },
    });

    const bad = await execute(conn, 'schema-2', 'Describe the release', { responseSchema });
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toMatch(/^the answer does not match the responseSchema: .*title.*/);
  });

  it('fails a run with a readable reason for each endpoint error, and never shows the key', async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    server.replies.push(
      failure(401, `Incorrect API key provided: ${API_KEY}. You can find your API key at https://platform.openai.com/account/api-keys.`),
      failure(403, 'Project does not have access to this model'),
      failure(404, `The model \`${MODEL}\` does not exist or you do not have access to it.`),
      failure(429, 'Rate limit reached for requests', { 'retry-after': '7' }),
      failure(500, 'The server had an error while processing your request.'),
      streamed([chunk({ role: 'assistant', content: 'Part' }), '{"id": "chatcmpl-stand-in", "choices": [{"delta": {"content": "br']),
      async (res) => {
        writeEvents(res, [chunk({ role: 'assistant', content: 'Half' })], false);
        // The connection drops mid-answer, once the client has seen its start.
        await until(() => conn.messages.some((m) => m.executionId === 'error-6' && m.type === 'output'));
        res.destroy();
      },
    );
    const reasons: string[] = [];
    for (let i = 0; i < 7; i++) {
      const result = await execute(conn, `error-${i}`, 'go');
      expect(result.isError).toBe(true);
      reasons.push(textOf(result));
    }
    expect(reasons[0]).toBe(
      'the endpoint refused the API key (401): Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys. (check HOST_OPENAI_API_KEY)',
    );
    expect(reasons[1]).toBe(
      'the endpoint refused the API key (403): Project does not have access to this model (check HOST_OPENAI_API_KEY)',
    );
    expect(reasons[2]).toMatch(
      /^the endpoint knows no model "stand-in-model" or no path http:\/\/127\.0\.0\.1:\d+\/v1\/chat\/completions \(404\): The model `stand-in-model` does not exist/,
    );
    expect(reasons[3]).toBe('the endpoint is rate limiting this host (429, retry after 7 s): Rate limit reached for requests');
    expect(reasons[4]).toBe('the endpoint failed (500): The server had an error while processing your request.');
    expect(reasons[5]).toBe(
      'the endpoint sent a malformed stream chunk (not JSON): {"id": "chatcmpl-stand-in", "choices": [{"delta": {"content": "br',
    );
    expect(reasons[6]).toBe("the endpoint's answer broke off: terminated");
    expect(JSON.stringify([reasons, conn.messages])).not.toContain(API_KEY);

    // A wrong base URL, and a server that is not there.
    const gone = await startOpenAIStandIn();
    await gone.close();
    const unreachable = await connect(gone.baseUrl);
    const down = await execute(unreachable, 'error-down', 'go');
    expect(textOf(down)).toBe(`cannot reach the endpoint ${gone.baseUrl}/chat/completions (ECONNREFUSED)`);
    const wrongPath = await connect(server.baseUrl.replace(/\/v1$/, '/api'));
    expect(textOf(await execute(wrongPath, 'error-path', 'go'))).toMatch(
      /^the endpoint knows no model "stand-in-model" or no path .*\/api\/chat\/completions \(404\): Unknown request URL/,
    );
  });

  it('takes a whole answer from a server that does not stream, and stops a run at the output limit', async () => {
    const server = await standIn();
    server.replies.push(
      (res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        const message = { role: 'assistant', content: 'All at once.' };
        res.end(
          JSON.stringify({
            id: 'chatcmpl-1',
            object: 'chat.completion',
            model: MODEL,
            choices: [{ index: 0, message, finish_reason: 'stop' }],
            usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
          }),
        );
      },
      (res) =>
        writeEvents(res, [chunk({ role: 'assistant', content: '0123456789\n' }), chunk({ content: 'more than the limit\n' })], false),
    );
    const conn = await connect(server.baseUrl, { limits: { outputBytes: 15 } });
    const whole = await execute(conn, 'whole-1', 'go');
    expect(whole.structuredContent).toEqual({ success: true, output: 'All at once.', tokensUsed: 7 });
    expect(conn.messages).toContainEqual({ executionId: 'whole-1', type: 'output', text: 'All at once.' });

    const limited = await execute(conn, 'limit-1', 'go');
    expect(textOf(limited)).toBe('output limit reached: a run may print at most 15 bytes; it was stopped');
    await until(() => server.hangUps === 1);
  });

  it('stops a model that keeps calling tools at the turn limit', async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl, { extraEnv: { HOST_OPENAI_MAX_TURNS: '2' } });
    const again = (id: string) =>
      streamed(toolCallChunks([{ id, name: 'update_todos', arguments: { items: [{ title: 'Think', status: 'in_progress' }] } }]));
    server.replies.push(again('call_1'), again('call_2'), again('call_3'));
    const result = await execute(conn, 'turns-1', 'Never stop');
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('the model did not finish within 2 turns (HOST_OPENAI_MAX_TURNS)');
    expect(server.requests).toHaveLength(2);
  });

  it('cancel closes the connection to the endpoint at once, and stops a command the model started', async () => {
    const server = await standIn();
    // What the host sends, also after the client stopped listening to a cancelled call.
    const sent: Record<string, unknown>[] = [];
    const conn = await connect(server.baseUrl, { onEvent: (data) => sent.push({ ...data }) });
    // An answer that never ends.
    server.replies.push((res) => writeEvents(res, [chunk({ role: 'assistant', content: 'Thinking\n' })], false));
    const controller = new AbortController();
    const call = execute(conn, 'cancel-1', 'Think forever', {}, { signal: controller.signal });
    await until(() => conn.messages.some((m) => m.type === 'output'));
    const cancelledAt = Date.now();
    controller.abort();
    await expect(call).rejects.toThrow();
    await conn.host.waitForCancellation('cancel-1');
    await until(() => server.hangUps === 1, 2000);
    expect(Date.now() - cancelledAt).toBeLessThan(2000);
    expect(conn.host.running()).toBe(0);

    // Cancel while a command the model asked for runs: the command is stopped, no further turn starts.
    server.replies.push(
      streamed(
        toolCallChunks([{ id: 'call_sleep', name: 'run_command', arguments: { command: 'node -e "setTimeout(() => {}, 60000)"' } }]),
      ),
    );
    const second = new AbortController();
    const sleeping = execute(conn, 'cancel-2', 'Wait a minute', { allowedTools: ['node'] }, { signal: second.signal });
    await until(() => conn.messages.some((m) => m.executionId === 'cancel-2' && m.type === 'tool_call'));
    const stoppedAt = Date.now();
    second.abort();
    await expect(sleeping).rejects.toThrow();
    await until(() => conn.host.running() === 0, 3000);
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
    expect(sent.find((m) => m.executionId === 'cancel-2' && m.type === 'tool_result')).toMatchObject({
      toolCallId: 'call_sleep',
      result: { error: 'cancelled' },
    });
    expect(server.requests).toHaveLength(2);
  });
});

describe('openai engine on what a small local model really sends', () => {
  it("keeps a model's <think> segment (recorded from SmolLM2 on llama.cpp) out of the output, and tells it as progress", async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    const recorded = await readFile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'llm', 'smollm2-think.sse'), 'utf8');
    server.replies.push((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(recorded);
    });
    const progress: string[] = [];
    const result = await execute(
      conn,
      'think-1',
      'Why is the sky blue? Think first.',
      {},
      {
        onprogress: (p) => {
          progress.push(p.message ?? '');
        },
      },
    );
    expect(result.structuredContent).toMatchObject({ success: true, output: 'the sky can be influenced by our senses.', tokensUsed: 75 });
    const said = joinOutputs(conn.messages).filter((m) => m.type === 'output');
    expect(said).toEqual([expect.objectContaining({ text: 'the sky can be influenced by our senses.' })]);
    expect(progress).toContain('turn 1: thinking');
  });

  it('runs a tool call the model wrote as its answer text (recorded from qwen on llama.cpp) as a call, and goes on', async () => {
    const server = await standIn();
    const conn = await connect(server.baseUrl);
    const recorded = await readFile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'llm', 'qwen-tool-call-as-text.sse'), 'utf8');
    server.replies.push(
      (res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(recorded);
      },
      streamed([...textChunks(['I could not read it.']), usageChunk(90, 6)]),
    );
    const result = await execute(conn, 'text-call-1', 'Read the file notes.txt and tell me what it says.');
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ success: true });
    const phases = joinOutputs(conn.messages).map((m) => m.type);
    expect(phases).toEqual(['output', 'tool_call', 'tool_result', 'output']);
    expect(conn.messages.find((m) => m.type === 'tool_call')).toMatchObject({ name: 'read_file', toolCallId: 'call_1_text' });
    // What went back: the call alone (no text copy of it), then the workspace's refusal of the absolute path.
    const second = server.requests[1]!.body.messages as {
      role: string;
      content: string | null;
      tool_call_id?: string;
      tool_calls?: unknown[];
    }[];
    expect(second[2]).toMatchObject({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_1_text', type: 'function', function: { name: 'read_file', arguments: '{"path":"/path/to/notes.txt"}' } }],
    });
    expect(second[3]).toMatchObject({ role: 'tool', tool_call_id: 'call_1_text', content: expect.stringMatching(/^error: .*is absolute/) });
  });
});
