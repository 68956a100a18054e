/**
 * The reference host as an MCP task host, against the official SDK client: execute_prompt and
 * install_tool are task-optional (a plain call behaves as before), a task-augmented call
 * returns a task whose events and result come through tasks/result in any session, one task
 * per executionId, tasks/cancel stops the run, tasks outlive a restart with a data dir (a run
 * lost with the process is failed, never completed), input requests in task and plain mode,
 * and the approval gate of a tool granted with requiresApproval.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  CallToolResultSchema,
  CreateTaskResultSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  RELATED_TASK_META_KEY,
  type CallToolResult,
  type ElicitRequest,
  type ElicitResult,
  type Progress,
} from '@modelcontextprotocol/sdk/types.js';
import type { HostMessage } from '../lib/host-contract';
import { startAgentHost, type AgentHost, type AgentHostOptions } from './server';
import { RESTART_LOST } from './task-store';
import { NO_ELICITATION } from './tool-serving';
import { EXECUTION_META_KEY } from './tools';
import { workspacePath } from './workspaces';

const TOKEN = 'task-host-token';
const run = promisify(execFile);

const hosts: AgentHost[] = [];
const clients: Client[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
  await Promise.allSettled(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'task-host-'));
  dirs.push(dir);
  return dir;
}

async function startHost(options: Partial<AgentHostOptions> = {}): Promise<AgentHost> {
  const host = await startAgentHost({ token: TOKEN, stepDelayMs: 5, workspaceRoot: await tempDir(), ...options });
  hosts.push(host);
  return host;
}

type Elicit = (request: ElicitRequest, extra: { signal: AbortSignal }) => Promise<ElicitResult>;

interface Connection {
  client: Client;
  /** Every notifications/message received, with its params' _meta. */
  messages: { data: HostMessage; meta?: Record<string, unknown> }[];
  /** Every elicitation/create received. */
  questions: ElicitRequest['params'][];
}

async function connect(host: AgentHost, elicit?: Elicit): Promise<Connection> {
  const client = new Client({ name: 'task-host-test', version: '0.0.0' }, elicit ? { capabilities: { elicitation: { form: {} } } } : {});
  clients.push(client);
  const messages: Connection['messages'] = [];
  const questions: Connection['questions'] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    messages.push({
      data: notification.params.data as HostMessage,
      ...(notification.params._meta ? { meta: notification.params._meta } : {}),
    });
  });
  if (elicit) {
    client.setRequestHandler(ElicitRequestSchema, (request, extra) => {
      questions.push(request.params);
      return elicit(request, extra);
    });
  }
  await client.connect(
    new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
  );
  return { client, messages, questions };
}

function promptArgs(executionId: string, prompt: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { executionId, agentId: 'agent-1', agentName: 'Agent One', prompt, ...extra };
}

/** A task-augmented tools/call, as mcp-fleet sends it. */
async function createTask(client: Client, name: string, args: Record<string, unknown>, options: RequestOptions = {}) {
  const { task } = await client.request({ method: 'tools/call', params: { name, arguments: args } }, CreateTaskResultSchema, {
    task: { ttl: 60_000 },
    ...options,
  });
  return task;
}

async function taskResult(client: Client, taskId: string, options: RequestOptions = {}): Promise<CallToolResult> {
  return client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema, { timeout: 20_000, ...options });
}

function textOf(result: CallToolResult): string {
  return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function processesRunning(pattern: string): Promise<boolean> {
  const { stdout } = await run('ps', ['-eo', 'args']);
  return stdout.split('\n').some((line) => line.trim() === pattern);
}

/** The data lines of an SSE text. */
function sseData(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('data: '))
    .map((line) => line.slice('data: '.length));
}

/** A session driven with fetch, to drop a response stream midway as a broken connection would. */
async function rawSession(host: AgentHost) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${host.token}`,
  };
  const init = await fetch(host.url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
    }),
  });
  await init.text();
  const sessionId = init.headers.get('mcp-session-id')!;
  const post = (body: unknown, signal?: AbortSignal) =>
    fetch(host.url, {
      method: 'POST',
      headers: { ...headers, 'mcp-session-id': sessionId, 'mcp-protocol-version': '2025-11-25' },
      body: JSON.stringify(body),
      ...(signal ? { signal } : {}),
    });
  await (await post({ jsonrpc: '2.0', method: 'notifications/initialized' })).text();
  return { post };
}

/** host/main.ts in a process of its own, so that a test can kill it as a crash would. */
async function startProgram(dataDir: string, workspaceRoot: string): Promise<{ child: ChildProcess; host: AgentHost }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: { HOST_TOKEN: TOKEN, HOST_PORT: '0', HOST_ENGINE: 'script', HOST_DATA_DIR: dataDir, HOST_WORKSPACE_ROOT: workspaceRoot },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const found = /listening on (\S+)/.exec(out);
      if (found) resolve(found[1]!);
    });
    child.once('exit', (code) => reject(new Error(`host/main.ts exited (${code}): ${out}`)));
  });
  // Only what connect() and the assertions read of an AgentHost.
  return { child, host: { url, token: TOKEN } as AgentHost };
}

describe('plain calls on a task host', () => {
  it('declares tasks, publishes execute_prompt and install_tool as task-optional, and answers a plain call as before', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    expect(client.getServerCapabilities()?.tasks).toEqual({ list: {}, cancel: {}, requests: { tools: { call: {} } } });
    const { tools } = await client.listTools();
    const support = Object.fromEntries(tools.map((tool) => [tool.name, tool.execution?.taskSupport]));
    expect(support).toMatchObject({
      execute_prompt: 'optional',
      install_tool: 'optional',
      provision_agent: 'forbidden',
      check_tool: 'forbidden',
    });

    const progress: Progress[] = [];
    let seenBeforeResult = 0;
    const result = (await client.callTool({ name: 'execute_prompt', arguments: promptArgs('plain-1', 'go [steps:3]') }, undefined, {
      onprogress: (p) => progress.push(p),
    })) as CallToolResult;
    seenBeforeResult = messages.length;
    expect(seenBeforeResult).toBe(3);
    expect(result).toEqual({
      content: [{ type: 'text', text: 'chunk 1\nchunk 2\nchunk 3\n' }],
      structuredContent: { success: true, output: 'chunk 1\nchunk 2\nchunk 3\n' },
    });
    // Streamed on the call itself, with no task meta; progress i/N as before.
    expect(messages.map((m) => m.meta)).toEqual([undefined, undefined, undefined]);
    expect(progress.map((p) => [p.progress, p.total])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    // A plain call leaves no task behind.
    expect((await client.experimental.tasks.listTasks()).tasks).toEqual([]);
  });

  it('a plain host (tasks: false) declares no tasks and publishes no task support', async () => {
    const host = await startHost({ tasks: false });
    const { client } = await connect(host);
    expect(client.getServerCapabilities()?.tasks).toBeUndefined();
    const { tools } = await client.listTools();
    expect(tools.find((t) => t.name === 'execute_prompt')?.execution?.taskSupport ?? 'forbidden').toBe('forbidden');
    const result = (await client.callTool({ name: 'execute_prompt', arguments: promptArgs('plain-2', 'hi') })) as CallToolResult;
    expect(textOf(result)).toBe('script engine: hi');
  });
});

describe('task mode', () => {
  it('creates a task; tasks/get follows it; tasks/result streams its events with the related-task meta and returns the result', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    const progress: Progress[] = [];
    const task = await createTask(client, 'execute_prompt', promptArgs('task-1', 'go [steps:3] [delay:50]'), {
      onprogress: (p) => progress.push(p),
    });
    expect(task).toMatchObject({ status: 'working', ttl: 60_000, pollInterval: expect.any(Number) });
    // Nothing is sent on the tools/call: the events wait for tasks/result.
    expect(messages).toEqual([]);
    expect(await client.experimental.tasks.getTask(task.taskId)).toMatchObject({ taskId: task.taskId, status: 'working' });

    const result = await taskResult(client, task.taskId);
    expect(result.structuredContent).toEqual({ success: true, output: 'chunk 1\nchunk 2\nchunk 3\n' });
    expect(result._meta?.[RELATED_TASK_META_KEY]).toEqual({ taskId: task.taskId });
    expect(messages.map((m) => m.data)).toEqual([1, 2, 3].map((i) => ({ executionId: 'task-1', type: 'output', text: `chunk ${i}\n` })));
    for (const message of messages) expect(message.meta?.[RELATED_TASK_META_KEY]).toEqual({ taskId: task.taskId });
    // Progress goes to the original request's handler, which the SDK keeps for the task.
    expect(progress.map((p) => [p.progress, p.total])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(await client.experimental.tasks.getTask(task.taskId)).toMatchObject({ status: 'completed' });
    expect(host.taskRequests.map((r) => r.method)).toEqual(expect.arrayContaining(['tasks/get', 'tasks/result']));
    expect(host.taskRequests.find((r) => r.method === 'tasks/result')).toMatchObject({ taskId: task.taskId });
  });

  it('streams events while the run goes on, not only at its end', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    const task = await createTask(client, 'execute_prompt', promptArgs('task-live', '[steps:20] [delay:50]'));
    const pending = taskResult(client, task.taskId);
    await until(() => messages.length >= 2);
    expect((await client.experimental.tasks.getTask(task.taskId)).status).toBe('working');
    await pending;
    expect(messages).toHaveLength(20);
  });

  it('a second session (same token) finds the task, its events and its result', async () => {
    const host = await startHost();
    const first = await connect(host);
    const task = await createTask(first.client, 'execute_prompt', promptArgs('task-2', '[steps:2] [delay:30]'));
    await first.client.close();

    const second = await connect(host);
    expect(await second.client.experimental.tasks.getTask(task.taskId)).toMatchObject({ taskId: task.taskId });
    const result = await taskResult(second.client, task.taskId);
    expect(result.structuredContent).toEqual({ success: true, output: 'chunk 1\nchunk 2\n' });
    expect(second.messages.map((m) => m.data.type)).toEqual(['output', 'output']);
    const sessions = new Set(host.taskRequests.map((r) => r.sessionId));
    expect(sessions.size).toBe(1);
    // And a finished task's result can be read again while its TTL lasts.
    expect((await taskResult(second.client, task.taskId)).structuredContent).toEqual(result.structuredContent);
  });

  it('one task per executionId: the same call sent twice returns the same task and runs once', async () => {
    const outputs: string[] = [];
    const host = await startHost({ onEvent: (data) => data.type === 'output' && outputs.push(String(data.executionId)) });
    const { client } = await connect(host);
    const args = promptArgs('task-dedupe', '[steps:3] [delay:20]');
    const first = await createTask(client, 'execute_prompt', args);
    const second = await createTask(client, 'execute_prompt', args);
    expect(second.taskId).toBe(first.taskId);
    await taskResult(client, first.taskId);
    // Even once the task is over, the repeat gets the finished task, not a new run.
    const third = await createTask(client, 'execute_prompt', args);
    expect(third).toMatchObject({ taskId: first.taskId, status: 'completed' });
    expect(host.calls.filter((c) => c.tool === 'execute_prompt')).toHaveLength(3);
    expect(outputs).toEqual(['task-dedupe', 'task-dedupe', 'task-dedupe']);
    expect((await client.experimental.tasks.listTasks()).tasks.map((t) => t.taskId)).toEqual([first.taskId]);
  });

  it('tasks/cancel stops the run: its command is killed, the task is cancelled and tasks/result answers', async () => {
    const host = await startHost({ allowCommands: true });
    const { client } = await connect(host);
    const seconds = `3${Math.floor(Math.random() * 1e6)}`;
    const task = await createTask(
      client,
      'execute_prompt',
      promptArgs('task-cancel', `[run:sleep ${seconds}]`, { allowedTools: ['sleep'] }),
    );
    await until(() => processesRunning(`sleep ${seconds}`));

    const cancelled = await client.experimental.tasks.cancelTask(task.taskId);
    expect(cancelled).toMatchObject({ taskId: task.taskId, status: 'cancelled' });
    await host.waitForCancellation('task-cancel');
    await until(async () => !(await processesRunning(`sleep ${seconds}`)), 5000);
    expect(host.taskRequests.filter((r) => r.method === 'tasks/cancel')).toEqual([expect.objectContaining({ taskId: task.taskId })]);

    const result = await taskResult(client, task.taskId);
    expect(result.isError).toBe(true);
    expect((await client.experimental.tasks.getTask(task.taskId)).status).toBe('cancelled');
    await until(() => host.running() === 0);
  });

  it('a tasks/result whose stream the client drops takes no more events: the next tasks/result gets the rest', async () => {
    const host = await startHost();
    const raw = await rawSession(host);
    const created = await raw.post({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'execute_prompt', arguments: promptArgs('task-drop', '[steps:30] [delay:20]'), task: { ttl: 60_000 } },
    });
    const taskId = (JSON.parse(sseData(await created.text())[0]!) as { result: { task: { taskId: string } } }).result.task.taskId;

    // Read a few events of a tasks/result, then drop the connection.
    const drop = new AbortController();
    const response = await raw.post({ jsonrpc: '2.0', id: 3, method: 'tasks/result', params: { taskId } }, drop.signal);
    const reader = response.body!.getReader();
    let text = '';
    while (sseData(text).length < 3) text += new TextDecoder().decode((await reader.read()).value);
    drop.abort();
    // Long enough for a handler left behind to take a dozen events off the queue.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const seenFirst = sseData(text).map((data) => (JSON.parse(data) as { params: { data: { text: string } } }).params.data.text);

    const { client, messages } = await connect(host);
    const result = await taskResult(client, taskId);
    expect(result.isError).toBeFalsy();
    const seenThen = messages.map((m) => (m.data.type === 'output' ? m.data.text : ''));
    // The abandoned request stopped taking events once its stream was gone: at most the one
    // written while the connection was breaking is lost (MCP has no acknowledgement of events).
    const all = new Set([...seenFirst, ...seenThen]);
    const missing = Array.from({ length: 30 }, (_, i) => `chunk ${i + 1}\n`).filter((chunk) => !all.has(chunk));
    expect(missing.length).toBeLessThanOrEqual(1);
    expect(seenThen.at(-1)).toBe('chunk 30\n');
  });

  it('a run nobody reads is held back at 1000 queued events, and its wall-time limit still ends it', async () => {
    const host = await startHost({ limits: { wallTimeMs: 300 } });
    const { client, messages } = await connect(host);
    const task = await createTask(client, 'execute_prompt', promptArgs('task-full', '[steps:5000] [delay:0]'));
    await until(async () => (await client.experimental.tasks.getTask(task.taskId)).status === 'failed', 5000);
    const result = await taskResult(client, task.taskId);
    expect(textOf(result)).toBe('wall-time limit reached: a run may take at most 300 ms; it was stopped');
    // What was queued is still delivered, in order.
    expect(messages.length).toBeGreaterThanOrEqual(1000);
    expect(messages[999]!.data).toMatchObject({ type: 'output', text: 'chunk 1000\n' });
  });

  it('install_tool runs as a task too', async () => {
    const host = await startHost({ allowCommands: true });
    const { client } = await connect(host);
    const task = await createTask(client, 'install_tool', { name: 'demo', installCommand: 'true', versionCommand: 'echo 1.2.3' });
    const result = await taskResult(client, task.taskId);
    expect(result.structuredContent).toMatchObject({ installed: true, version: '1.2.3' });
  });
});

describe('restart with a data dir', () => {
  it('a task running when the host went away is failed with the restart sentence; a finished one keeps its result', async () => {
    const dataDir = await tempDir();
    const workspaceRoot = await tempDir();
    const first = await startHost({ dataDir, workspaceRoot });
    const a = await connect(first);
    const done = await createTask(a.client, 'execute_prompt', promptArgs('restart-done', '[steps:2]'));
    const doneResult = await taskResult(a.client, done.taskId);
    const running = await createTask(a.client, 'execute_prompt', promptArgs('restart-running', '[hang]'));
    await until(() => first.running() === 1);
    await a.client.close();
    await first.close();

    const second = await startHost({ dataDir, workspaceRoot });
    const b = await connect(second);
    const lost = await b.client.experimental.tasks.getTask(running.taskId);
    expect(lost).toMatchObject({ status: 'failed', statusMessage: RESTART_LOST });
    const lostResult = await taskResult(b.client, running.taskId);
    expect(lostResult).toMatchObject({ isError: true, content: [{ type: 'text', text: RESTART_LOST }] });
    expect(await taskResult(b.client, done.taskId)).toMatchObject({ structuredContent: doneResult.structuredContent });
    // The executionId still names its task: a repeat does not start the lost run again.
    expect((await createTask(b.client, 'execute_prompt', promptArgs('restart-running', '[hang]'))).taskId).toBe(running.taskId);
    expect(second.running()).toBe(0);
  });

  it('the host program killed with SIGKILL (HOST_DATA_DIR): its running task is failed at the next start, never completed', async () => {
    const dataDir = await tempDir();
    const workspaceRoot = await tempDir();
    const first = await startProgram(dataDir, workspaceRoot);
    try {
      const a = await connect(first.host);
      const task = await createTask(a.client, 'execute_prompt', promptArgs('killed', '[steps:1000] [delay:20]'));
      await until(async () => (await a.client.experimental.tasks.getTask(task.taskId)).status === 'working');
      first.child.kill('SIGKILL');
      await new Promise((resolve) => first.child.once('exit', resolve));
      await a.client.close().catch(() => undefined);

      const second = await startProgram(dataDir, workspaceRoot);
      try {
        const b = await connect(second.host);
        expect(await b.client.experimental.tasks.getTask(task.taskId)).toMatchObject({ status: 'failed', statusMessage: RESTART_LOST });
        expect(await taskResult(b.client, task.taskId)).toMatchObject({ isError: true, content: [{ type: 'text', text: RESTART_LOST }] });
      } finally {
        second.child.kill('SIGKILL');
      }
    } finally {
      first.child.kill('SIGKILL');
    }
  });

  it('without a data dir a restarted host does not know the task', async () => {
    const workspaceRoot = await tempDir();
    const first = await startHost({ workspaceRoot });
    const a = await connect(first);
    const task = await createTask(a.client, 'execute_prompt', promptArgs('forgotten', '[hang]'));
    await a.client.close();
    await first.close();
    const second = await startHost({ workspaceRoot });
    const b = await connect(second);
    await expect(b.client.experimental.tasks.getTask(task.taskId)).rejects.toMatchObject({ code: -32602 });
  });
});

describe('input requests', () => {
  it('in a task: input_required, the question re-sent on every tasks/result until answered (from another session too)', async () => {
    const host = await startHost();
    // The first client sees the question and does not answer; its tasks/result is then abandoned.
    const silent = await connect(
      host,
      (_request, extra) => new Promise((_resolve, reject) => extra.signal.addEventListener('abort', () => reject(new Error('aborted')))),
    );
    const task = await createTask(silent.client, 'execute_prompt', promptArgs('ask-task', '[ask:Which colour?] done'));
    await until(async () => (await silent.client.experimental.tasks.getTask(task.taskId)).status === 'input_required');

    const abandon = new AbortController();
    const first = taskResult(silent.client, task.taskId, { signal: abandon.signal }).catch((error: unknown) => error);
    await until(() => silent.questions.length === 1);
    expect(silent.questions[0]).toMatchObject({
      message: 'Which colour?',
      requestedSchema: { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'] },
      _meta: { [RELATED_TASK_META_KEY]: { taskId: task.taskId }, [EXECUTION_META_KEY]: 'ask-task' },
    });
    abandon.abort();
    await first;
    expect((await silent.client.experimental.tasks.getTask(task.taskId)).status).toBe('input_required');

    const answering = await connect(host, async () => ({ action: 'accept', content: { answer: 'blue' } }));
    const result = await taskResult(answering.client, task.taskId);
    expect(answering.questions.map((q) => q.message)).toEqual(['Which colour?']);
    expect(result.structuredContent).toEqual({
      success: true,
      output: 'asked "Which colour?": accept {"answer":"blue"}\nscript engine: done',
    });
    expect(answering.messages.map((m) => m.data)).toContainEqual({
      executionId: 'ask-task',
      type: 'output',
      text: 'asked "Which colour?": accept {"answer":"blue"}\n',
    });
  });

  it('in a plain call: elicitation/create on the call, with the executionId meta', async () => {
    const host = await startHost();
    const { client, questions } = await connect(host, async () => ({ action: 'decline' }));
    const result = (await client.callTool({
      name: 'execute_prompt',
      arguments: promptArgs('ask-plain', '[ask-bool:Go on?]'),
    })) as CallToolResult;
    expect(questions).toEqual([
      {
        message: 'Go on?',
        requestedSchema: { type: 'object', properties: { yes: { type: 'boolean' } }, required: ['yes'] },
        _meta: { [EXECUTION_META_KEY]: 'ask-plain' },
      },
    ]);
    expect(result.structuredContent).toMatchObject({ success: true, output: 'asked "Go on?": decline\nscript engine: ' });
  });

  it('a client without the elicitation capability gets no question: the host declines, saying why', async () => {
    const host = await startHost();
    const { client } = await connect(host);
    const plain = (await client.callTool({ name: 'execute_prompt', arguments: promptArgs('ask-none', '[ask:Anyone?]') })) as CallToolResult;
    expect(textOf(plain)).toContain(`asked "Anyone?": decline (${NO_ELICITATION})`);
    const task = await createTask(client, 'execute_prompt', promptArgs('ask-none-task', '[ask:Anyone?]'));
    expect(textOf(await taskResult(client, task.taskId))).toContain(`asked "Anyone?": decline (${NO_ELICITATION})`);
  });

  it('a question nobody answers within the input timeout is answered `cancel`, and the run goes on', async () => {
    const host = await startHost({ inputTimeoutMs: 300, limits: { wallTimeMs: 200 } });
    const { client } = await connect(host, () => new Promise(() => undefined));
    const task = await createTask(client, 'execute_prompt', promptArgs('ask-expire', '[ask:Hello?] bye'));
    // The wait (300 ms) is past the wall-time limit (200 ms): waiting for a person is not working time.
    const result = await taskResult(client, task.taskId);
    expect(result.structuredContent).toEqual({
      success: true,
      output: 'asked "Hello?": cancel (no answer within 300 ms)\nscript engine: bye',
    });
  });

  it('a task cancelled while it waits for an answer ends cancelled', async () => {
    const host = await startHost();
    const { client } = await connect(host, () => new Promise(() => undefined));
    const task = await createTask(client, 'execute_prompt', promptArgs('ask-cancel', '[ask:Wait?]'));
    await until(async () => (await client.experimental.tasks.getTask(task.taskId)).status === 'input_required');
    await client.experimental.tasks.cancelTask(task.taskId);
    await until(() => host.running() === 0);
    expect((await client.experimental.tasks.getTask(task.taskId)).status).toBe('cancelled');
  });
});

describe('approval gate (requiresApproval)', () => {
  const grant = [{ name: 'touch', requiresApproval: true }];

  it('declined: the command does not run and the run fails with the refusal', async () => {
    const host = await startHost({ allowCommands: true });
    const { client, questions, messages } = await connect(host, async () => ({ action: 'decline' }));
    const result = (await client.callTool({
      name: 'execute_prompt',
      arguments: promptArgs('gate-no', '[run:touch marker]', { allowedTools: grant }),
    })) as CallToolResult;
    expect(questions.map((q) => [q.message, 'requestedSchema' in q ? q.requestedSchema.required : undefined])).toEqual([
      ['Agent Agent One wants to run: touch marker', ['approve']],
    ]);
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('tool call refused: not approved (decline)');
    expect(messages.map((m) => m.data).filter((d) => d.type === 'tool_result')).toEqual([
      expect.objectContaining({ type: 'tool_result', name: 'touch', result: { error: 'refused: not approved (decline)' } }),
    ]);
    await expect(access(path.join(workspacePath(host.workspaceRoot, 'agent-1'), 'marker'))).rejects.toThrow();
  });

  it('accepted without approve: true is not an approval', async () => {
    const host = await startHost({ allowCommands: true });
    const { client } = await connect(host, async () => ({ action: 'accept', content: { approve: false } }));
    const result = (await client.callTool({
      name: 'execute_prompt',
      arguments: promptArgs('gate-false', '[run:touch marker]', { allowedTools: grant }),
    })) as CallToolResult;
    expect(textOf(result)).toBe('tool call refused: not approved (accept)');
    await expect(access(path.join(workspacePath(host.workspaceRoot, 'agent-1'), 'marker'))).rejects.toThrow();
  });

  it('approved in a task: the command runs', async () => {
    const host = await startHost({ allowCommands: true });
    const { client, questions } = await connect(host, async () => ({ action: 'accept', content: { approve: true } }));
    const task = await createTask(client, 'execute_prompt', promptArgs('gate-yes', '[run:touch marker]', { allowedTools: grant }));
    const result = await taskResult(client, task.taskId);
    expect(result.isError).toBeFalsy();
    expect(questions.map((q) => q.message)).toEqual(['Agent Agent One wants to run: touch marker']);
    await access(path.join(workspacePath(host.workspaceRoot, 'agent-1'), 'marker'));
  });

  it('a tool granted without requiresApproval runs without a question', async () => {
    const host = await startHost({ allowCommands: true });
    const { client, questions } = await connect(host, async () => ({ action: 'decline' }));
    const result = (await client.callTool({
      name: 'execute_prompt',
      arguments: promptArgs('gate-none', '[run:touch marker]', { allowedTools: ['touch'] }),
    })) as CallToolResult;
    expect(result.isError).toBeFalsy();
    expect(questions).toEqual([]);
  });
});
