/**
 * The reference agent host against the official SDK client (Streamable HTTP, SSE responses):
 * auth, the tool list, the scripted execute_prompt with its notifications, cancellation (honoured
 * and ignored), structured data, the agent registry and the command tools.
 */
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { LoggingMessageNotificationSchema, type CallToolResult, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { HOST_CONTRACT, HOST_TOOLS, parseHostMessage, parsePromptResult, type HostMessage, type HostTool } from '../lib/host-contract';
import { parseDirectives } from './engines/script-directives';
import { startAgentHost, type AgentHost, type AgentHostOptions } from './server';

const TOKEN = 'test-host-token';

const hosts: AgentHost[] = [];
const clients: Client[] = [];

afterEach(async () => {
  // Clients first: their open SSE streams would otherwise be cut by the host mid-read.
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
});

async function startHost(options: Partial<AgentHostOptions> = {}): Promise<AgentHost> {
  const host = await startAgentHost({ token: TOKEN, ...options });
  hosts.push(host);
  return host;
}

type LogEntry = { level: string; logger?: string; data: HostMessage };

interface Connection {
  client: Client;
  /** Every notifications/message received, in arrival order. */
  messages: LogEntry[];
}

async function connect(host: AgentHost): Promise<Connection> {
  const client = new Client({ name: 'agent-host-test', version: '0.0.0' });
  clients.push(client);
  const messages: LogEntry[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    const { level, logger, data } = notification.params;
    messages.push({ level, logger, data: data as HostMessage });
  });
  const transport = new StreamableHTTPClientTransport(new URL(host.url), {
    requestInit: { headers: { Authorization: `Bearer ${host.token}` } },
  });
  await client.connect(transport);
  return { client, messages };
}

function promptArgs(executionId: string, prompt: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { executionId, agentId: 'agent-1', agentName: 'Agent One', prompt, ...extra };
}

async function callTool(client: Client, name: string, args: Record<string, unknown>, options?: RequestOptions): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, options)) as CallToolResult;
}

function textOf(result: CallToolResult): string {
  return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
}

async function until(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function initializeBody(): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
  });
}

describe('parseDirectives', () => {
  it('reads every directive and strips them (and the spec JSON) from the prompt', () => {
    const parsed = parseDirectives('build [steps:3] it [delay:5] [fail] [json] [spec] {"name":"x","note":"[hang]"} now');
    expect(parsed).toEqual({
      text: 'build it now',
      steps: 3,
      delayMs: 5,
      fail: true,
      throw: false,
      hang: false,
      ignoreCancel: false,
      json: true,
      spec: { name: 'x', note: '[hang]' },
      runs: [],
    });
    expect(parseDirectives('[bytes:10][hang][ignore-cancel][throw] [unknown] x')).toMatchObject({
      text: '[unknown] x',
      bytes: 10,
      hang: true,
      ignoreCancel: true,
      throw: true,
    });
  });
});

describe('agent host', () => {
  it('answers 401 {error:"unauthorized"} without the bearer token, and the SDK client cannot connect', async () => {
    const host = await startHost();
    for (const authorization of [undefined, 'Bearer wrong', TOKEN]) {
      const response = await fetch(host.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          ...(authorization ? { authorization } : {}),
        },
        body: initializeBody(),
      });
      expect(response.status).toBe(401);
      expect(await response.json()).toEqual({ error: 'unauthorized' });
    }
    const get = await fetch(host.url, { headers: { accept: 'text/event-stream' } });
    expect(get.status).toBe(401);
    await get.body?.cancel();

    const client = new Client({ name: 'no-token', version: '0.0.0' });
    clients.push(client);
    await expect(client.connect(new StreamableHTTPClientTransport(new URL(host.url)))).rejects.toMatchObject({ code: 401 });
    expect(host.calls).toEqual([]);
  });

  it('lists the seven host tools', async () => {
    const host = await startHost();
    const { client } = await connect(host);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([...HOST_TOOLS].sort());
    const execute = tools.find((tool) => tool.name === 'execute_prompt')!;
    expect(execute.inputSchema.required).toEqual(expect.arrayContaining(['executionId', 'agentId', 'agentName', 'prompt']));
    expect(execute.outputSchema?.properties).toHaveProperty('success');
  });

  it('publishes the schemas of lib/host-contract.ts, and its messages and answers parse with them', async () => {
    const host = await startHost({ allowCommands: true, stepDelayMs: 1 });
    const { client, messages } = await connect(host);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toEqual([...HOST_TOOLS]);
    for (const tool of tools) {
      const { args, result } = HOST_CONTRACT[tool.name as HostTool];
      expect(Object.keys(tool.inputSchema.properties ?? {})).toEqual(Object.keys(args.shape));
      expect(Object.keys(tool.outputSchema?.properties ?? {})).toEqual(Object.keys(result.shape));
    }

    const calls: [HostTool, Record<string, unknown>][] = [
      ['execute_prompt', promptArgs('contract', 'go [json]')],
      ['execute_prompt', promptArgs('contract-run', '[run:echo ran]', { allowedTools: ['echo'] })],
      ['provision_agent', { agentId: 'a1', name: 'one', role: 'WORKER', capabilities: [] }],
      ['activate_agent', { agentId: 'a1' }],
      ['deactivate_agent', { agentId: 'a1' }],
      ['install_tool', { name: 'demo', installCommand: 'true', versionCommand: 'echo 1.0' }],
      ['uninstall_tool', { name: 'demo', uninstallCommand: 'true' }],
      ['check_tool', { name: 'demo', versionCommand: 'echo 1.0' }],
    ];
    for (const [tool, args] of calls) {
      const answer = await callTool(client, tool, args);
      expect(answer.isError).toBeFalsy();
      expect(HOST_CONTRACT[tool].result.parse(answer.structuredContent)).toEqual(answer.structuredContent);
      if (tool === 'execute_prompt') expect(parsePromptResult(answer.structuredContent)).toEqual(answer.structuredContent);
    }
    const sent = messages.map((message) => message.data);
    expect(new Set(sent.map((data) => data.type))).toEqual(new Set(['todo', 'tool_call', 'tool_result', 'output']));
    expect(sent.map((data) => parseHostMessage(data))).toEqual(sent);
  });

  it('streams progress and every kind of message, in order and before the result, for the default script', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    type Seen = { kind: 'progress'; progress: Progress } | { kind: 'message'; entry: LogEntry };
    const timeline: Seen[] = [];
    client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
      const entry: LogEntry = {
        level: notification.params.level,
        logger: notification.params.logger,
        data: notification.params.data as HostMessage,
      };
      messages.push(entry);
      timeline.push({ kind: 'message', entry });
    });

    const outcome = await callTool(client, 'execute_prompt', promptArgs('exec-1', 'say hello [delay:5]'), {
      onprogress: (progress) => timeline.push({ kind: 'progress', progress }),
    }).then((result) => ({ result, seenBefore: timeline.length }));

    expect(outcome.seenBefore).toBe(timeline.length);
    const shape = timeline.map((seen) =>
      seen.kind === 'progress' ? `progress ${seen.progress.progress}/${seen.progress.total}` : seen.entry.data.type,
    );
    expect(shape).toEqual(['todo', 'todo', 'progress 1/3', 'todo', 'output', 'progress 2/3', 'output', 'todo', 'progress 3/3']);

    const entries = timeline.flatMap((seen) => (seen.kind === 'message' ? [seen.entry] : []));
    for (const entry of entries) {
      expect(entry).toMatchObject({ level: 'info', logger: 'agent', data: { executionId: 'exec-1' } });
    }
    const data = entries.map((entry) => entry.data);
    const todoStates = data.flatMap((d) => (d.type === 'todo' ? [d.todos.map((t) => t.status).join(',')] : []));
    expect(todoStates).toEqual(['pending,pending', 'in_progress,pending', 'completed,in_progress', 'completed,completed']);
    expect(data.find((d) => d.type === 'todo')).toEqual({
      executionId: 'exec-1',
      type: 'todo',
      todos: [
        { id: 'read', content: 'Read the prompt (script engine: no AI)', status: 'pending' },
        { id: 'echo', content: 'Echo the prompt back', status: 'pending' },
      ],
    });
    // The script engine runs nothing and writes nothing, so it reports no tool call or file change.
    expect(data.filter((d) => d.type === 'tool_call' || d.type === 'tool_result' || d.type === 'file_change')).toEqual([]);
    const progressMessages = timeline.flatMap((seen) => (seen.kind === 'progress' ? [seen.progress.message] : []));
    expect(progressMessages).toEqual(['reading', 'echoing', 'finished']);

    const output = data.map((d) => (d.type === 'output' ? d.text : '')).join('');
    expect(output).toBe('script engine: say hello');
    expect(outcome.result.isError).toBeFalsy();
    expect(outcome.result.structuredContent).toEqual({ success: true, output: 'script engine: say hello' });
    expect(textOf(outcome.result)).toBe('script engine: say hello');

    expect(host.calls).toEqual([
      { tool: 'execute_prompt', args: promptArgs('exec-1', 'say hello [delay:5]'), at: expect.any(Number), requestId: expect.anything() },
    ]);
    expect(host.running()).toBe(0);
  });

  it('[steps:N] streams N chunks with progress i/N; [bytes:N] sends one chunk of N characters', async () => {
    const host = await startHost({ stepDelayMs: 1 });
    const { client, messages } = await connect(host);
    const progress: Progress[] = [];
    const result = await callTool(client, 'execute_prompt', promptArgs('steps', 'go [steps:3]'), { onprogress: (p) => progress.push(p) });
    expect(progress.map((p) => [p.progress, p.total])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(messages.map((m) => m.data)).toEqual([1, 2, 3].map((i) => ({ executionId: 'steps', type: 'output', text: `chunk ${i}\n` })));
    expect(result.structuredContent).toEqual({ success: true, output: 'chunk 1\nchunk 2\nchunk 3\n' });

    const big = await callTool(client, 'execute_prompt', promptArgs('bytes', '[bytes:20000]'));
    const chunk = messages.filter((m) => m.data.executionId === 'bytes');
    expect(chunk).toHaveLength(1);
    expect(chunk[0]!.data).toEqual({ executionId: 'bytes', type: 'output', text: 'x'.repeat(20000) });
    expect(big.structuredContent).toEqual({ success: true, output: 'x'.repeat(20000) });
  });

  it('[fail] ends with isError after one output chunk; [throw] becomes an isError result', async () => {
    const host = await startHost({ stepDelayMs: 1 });
    const { client, messages } = await connect(host);
    const failed = await callTool(client, 'execute_prompt', promptArgs('fail', 'x [fail] [steps:3]'));
    expect(failed).toEqual({ isError: true, content: [{ type: 'text', text: 'script engine: the [fail] directive fails this run' }] });
    expect(messages.filter((m) => m.data.executionId === 'fail').map((m) => m.data)).toEqual([
      { executionId: 'fail', type: 'output', text: 'chunk 1\n' },
    ]);

    const thrown = await callTool(client, 'execute_prompt', promptArgs('throw', '[throw]'));
    expect(thrown.isError).toBe(true);
    expect(textOf(thrown)).toBe('host exploded');
    expect(host.running()).toBe(0);
  });

  it('[hang] stops when the client aborts (notifications/cancelled)', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    const controller = new AbortController();
    const call = callTool(client, 'execute_prompt', promptArgs('hang-1', 'wait [hang] [steps:2]'), {
      signal: controller.signal,
      onprogress: () => undefined,
    });
    await until(() => messages.some((m) => m.data.executionId === 'hang-1' && m.data.type === 'output'));
    expect(host.running()).toBe(1);

    controller.abort();
    await expect(call).rejects.toThrow();
    await host.waitForCancellation('hang-1');
    await until(() => host.running() === 0);
    expect(host.cancellations).toEqual([{ requestId: host.calls[0]!.requestId, executionId: 'hang-1', at: expect.any(Number) }]);
    // Nothing after the first chunk: the hang never got further.
    expect(messages.filter((m) => m.data.executionId === 'hang-1')).toHaveLength(1);

    // The session is still usable.
    const after = await callTool(client, 'execute_prompt', promptArgs('after', 'ok [steps:1]'));
    expect(after.structuredContent).toMatchObject({ success: true, output: 'chunk 1\n' });
  });

  it('[hang][ignore-cancel] keeps running after the client gave up, until close()', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    const controller = new AbortController();
    const call = callTool(client, 'execute_prompt', promptArgs('stuck', '[hang] [ignore-cancel]'), { signal: controller.signal });
    await until(() => messages.some((m) => m.data.executionId === 'stuck'));

    const abortedAt = Date.now();
    controller.abort();
    await expect(call).rejects.toThrow();
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    await host.waitForCancellation('stuck');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(host.running()).toBe(1);

    await host.close();
    expect(host.running()).toBe(0);
  });

  it('close() ends a running call with an error result the client still receives', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    const call = callTool(client, 'execute_prompt', promptArgs('closing', '[hang]'));
    await until(() => messages.some((m) => m.data.executionId === 'closing'));
    await host.close();
    const result = await call;
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('agent host is shutting down');
  });

  it('returns data: generated for responseSchema or [json], verbatim for [spec]{...}', async () => {
    const host = await startHost({ stepDelayMs: 0 });
    const { client } = await connect(host);
    const generated = await callTool(
      client,
      'execute_prompt',
      promptArgs('schema', 'a code reviewer', { responseSchema: { type: 'object', properties: { name: { type: 'string' } } } }),
    );
    expect(generated.structuredContent).toMatchObject({
      success: true,
      data: {
        name: 'generated-agent',
        displayName: 'Generated Agent',
        description: 'Created from: a code reviewer',
        role: 'WORKER',
        capabilities: ['general'],
      },
    });

    const json = await callTool(client, 'execute_prompt', promptArgs('json', 'a tester [json]'));
    expect(json.structuredContent?.data).toMatchObject({ name: 'generated-agent', description: 'Created from: a tester' });

    const spec = { name: 'x', displayName: 'X [not a directive]', nested: { list: [1, 'two', null], flag: false } };
    const verbatim = await callTool(
      client,
      'execute_prompt',
      promptArgs('spec', `make this [spec]${JSON.stringify(spec)} please`, { responseSchema: { type: 'object' } }),
    );
    expect(verbatim.structuredContent).toEqual({ success: true, output: 'script engine: make this please', data: spec });

    const plain = await callTool(client, 'execute_prompt', promptArgs('plain', 'no data'));
    expect(plain.structuredContent).not.toHaveProperty('data');
  });

  it('keeps the notifications of two concurrent calls on one connection apart', async () => {
    const host = await startHost();
    const { client, messages } = await connect(host);
    const progressA: Progress[] = [];
    const progressB: Progress[] = [];
    const [a, b] = await Promise.all([
      callTool(client, 'execute_prompt', promptArgs('exec-a', 'A [steps:4] [delay:30]'), { onprogress: (p) => progressA.push(p) }),
      callTool(client, 'execute_prompt', promptArgs('exec-b', 'B [steps:3] [delay:40]'), { onprogress: (p) => progressB.push(p) }),
    ]);
    expect(progressA.map((p) => `${p.progress}/${p.total}`)).toEqual(['1/4', '2/4', '3/4', '4/4']);
    expect(progressB.map((p) => `${p.progress}/${p.total}`)).toEqual(['1/3', '2/3', '3/3']);
    const textFor = (executionId: string) =>
      messages.flatMap((m) => (m.data.executionId === executionId && m.data.type === 'output' ? [m.data.text] : [])).join('');
    expect(textFor('exec-a')).toBe('chunk 1\nchunk 2\nchunk 3\nchunk 4\n');
    expect(textFor('exec-b')).toBe('chunk 1\nchunk 2\nchunk 3\n');
    expect(a.structuredContent).toMatchObject({ output: textFor('exec-a') });
    expect(b.structuredContent).toMatchObject({ output: textFor('exec-b') });
    // They really overlapped: B spoke before A was done.
    const ids = messages.map((m) => m.data.executionId);
    expect(ids.indexOf('exec-b')).toBeLessThan(ids.lastIndexOf('exec-a'));
  });

  it('provisions, activates and deactivates agents in its registry', async () => {
    const host = await startHost();
    const { client } = await connect(host);
    const provisioned = await callTool(client, 'provision_agent', {
      agentId: 'a1',
      name: 'Reviewer',
      role: 'WORKER',
      capabilities: ['review'],
      supervisorId: 's1',
    });
    expect(provisioned.structuredContent).toEqual({ provisioned: true, agentId: 'a1' });
    expect(host.agents.get('a1')).toEqual({ name: 'Reviewer', role: 'WORKER', active: false });

    expect((await callTool(client, 'activate_agent', { agentId: 'a1' })).structuredContent).toEqual({ active: true });
    expect(host.agents.get('a1')?.active).toBe(true);
    expect((await callTool(client, 'deactivate_agent', { agentId: 'a1' })).structuredContent).toEqual({ active: false });
    expect(host.agents.get('a1')?.active).toBe(false);

    const unknown = await callTool(client, 'activate_agent', { agentId: 'nope' });
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toBe('agent nope is not provisioned on this host');

    const call = await host.waitForCall('activate_agent', (c) => c.args.agentId === 'nope');
    expect(call.tool).toBe('activate_agent');
    expect(host.calls.map((c) => c.tool)).toEqual(['provision_agent', 'activate_agent', 'deactivate_agent', 'activate_agent']);
    await expect(host.waitForCall('check_tool', undefined, 50)).rejects.toThrow(/timed out/);
  });

  it('answers provision_agent with isError when failProvision is set', async () => {
    const host = await startHost({ failProvision: 'no capacity left on this host' });
    const { client } = await connect(host);
    const result = await callTool(client, 'provision_agent', { agentId: 'a1', name: 'A', role: 'WORKER', capabilities: [] });
    expect(result).toEqual({ isError: true, content: [{ type: 'text', text: 'no capacity left on this host' }] });
    expect(host.agents.size).toBe(0);
  });

  it('refuses the command tools unless allowCommands is set', async () => {
    const host = await startHost();
    const { client } = await connect(host);
    const install = await callTool(client, 'install_tool', { name: 'demo', installCommand: 'touch /tmp/should-never-exist' });
    expect(install).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'install_tool is not enabled on this host' }],
      structuredContent: { installed: false, log: 'install_tool is not enabled on this host' },
    });
    expect((await callTool(client, 'uninstall_tool', { name: 'demo', uninstallCommand: 'true' })).isError).toBe(true);
    expect((await callTool(client, 'check_tool', { name: 'demo', versionCommand: 'true' })).isError).toBe(true);
  });

  it('runs the command tools with allowCommands and parses versions', async () => {
    const host = await startHost({ allowCommands: true });
    const { client } = await connect(host);
    const install = await callTool(client, 'install_tool', {
      name: 'demo',
      installCommand: 'echo installing demo; echo warn >&2',
      versionCommand: 'echo demo version 2.3.4',
    });
    expect(install.isError).toBeFalsy();
    expect(install.structuredContent).toMatchObject({ installed: true, version: '2.3.4' });
    expect(install.structuredContent?.log).toContain('installing demo\nwarn\n');

    const failing = await callTool(client, 'install_tool', { name: 'demo', installCommand: 'echo oops; exit 3' });
    expect(failing.isError).toBe(true);
    expect(failing.structuredContent).toMatchObject({ installed: false, log: expect.stringContaining('exit code 3') });

    const check = await callTool(client, 'check_tool', { name: 'demo', versionCommand: 'echo build v42', versionRegex: 'v(\\d+)' });
    expect(check.structuredContent).toMatchObject({ installed: true, version: '42' });
    const missing = await callTool(client, 'check_tool', { name: 'demo', versionCommand: 'exit 127' });
    expect(missing.isError).toBeFalsy();
    expect(missing.structuredContent).toMatchObject({ installed: false });

    const uninstall = await callTool(client, 'uninstall_tool', { name: 'demo', uninstallCommand: 'echo removed' });
    expect(uninstall.structuredContent).toEqual({ uninstalled: true, log: '$ echo removed\nremoved\n' });
  });
});

describe('[run:...] in a prompt: the agent’s tool commands', () => {
  const git = (more: Record<string, unknown> = {}) => ({ name: 'git', allowedCommands: [], blockedCommands: [], ...more });

  async function run(host: AgentHost, prompt: string, allowedTools?: unknown[]) {
    const { client, messages } = await connect(host);
    const result = await callTool(
      client,
      'execute_prompt',
      promptArgs(`run-${messages.length}-${Math.random()}`, prompt, allowedTools ? { allowedTools } : {}),
    );
    return { result, events: messages.map((m) => m.data) };
  }

  it('runs a command of an allowed tool, streaming tool_call, its output and tool_result', async () => {
    const host = await startHost({ allowCommands: true });
    const { result, events } = await run(host, 'check [run:git --version] done', [git()]);
    expect(result.isError).toBeFalsy();
    expect(events.map((e) => e.type)).toEqual(['tool_call', 'output', 'tool_result', 'output']);
    expect(events[0]).toMatchObject({ type: 'tool_call', name: 'git', arguments: { command: 'git --version' } });
    expect(events[1]).toMatchObject({ type: 'output', text: expect.stringMatching(/^git version \d+\.\d+/) });
    expect(events[2]).toMatchObject({ type: 'tool_result', name: 'git', result: { exitCode: 0 } });
    expect(result.structuredContent).toMatchObject({ success: true, output: expect.stringMatching(/^git version .*check done$/s) });
  });

  it('still takes allowedTools as bare names', async () => {
    const host = await startHost({ allowCommands: true });
    expect((await run(host, '[run:git --version]', ['git'])).result.isError).toBeFalsy();
  });

  it.each([
    ['a tool the agent is not allowed', [], "git is not among the agent's allowed tools"],
    ['no allowedTools at all', undefined, "git is not among the agent's allowed tools"],
    ['a blocked command', [git({ blockedCommands: ['--version'] })], '"git --version" is blocked for this agent'],
    ['a command outside the allowed ones', [git({ allowedCommands: ['status'] })], "not among the agent's allowed commands of git"],
  ])('refuses %s with a tool_result error and fails the run, running nothing', async (_what, allowedTools, reason) => {
    const host = await startHost({ allowCommands: true });
    const { result, events } = await run(host, '[run:git --version]', allowedTools);
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain(reason);
    expect(events.map((e) => e.type)).toEqual(['tool_call', 'tool_result']);
    expect(events[1]).toMatchObject({ type: 'tool_result', name: 'git', result: { error: expect.stringContaining(reason) } });
  });

  it('runs nothing on a host that does not allow commands, whatever the agent may use', async () => {
    const host = await startHost();
    const { result } = await run(host, '[run:git --version]', [git()]);
    expect(textOf(result)).toContain('this host does not run commands');
  });

  it('runs the program itself, with no shell: ; and $(...) are only arguments', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'run-'));
    const marker = `${dir}/touched`;
    const host = await startHost({ allowCommands: true });
    const { result, events } = await run(host, `[run:echo hi; touch ${marker}] [run:echo $(touch ${marker})]`, [{ name: 'echo' }]);
    expect(result.isError).toBeFalsy();
    expect(events.filter((e) => e.type === 'output').map((e) => (e as { text: string }).text)).toEqual([
      `hi; touch ${marker}\n`,
      `$(touch ${marker})\n`,
    ]);
    await expect(access(marker)).rejects.toThrow();
    await rm(dir, { recursive: true, force: true });
    // A path would run another program under an allowed name.
    expect(textOf((await run(host, '[run:/usr/bin/git --version]', [git()])).result)).toContain('not a path');
  });

  it('fails the run when the command fails, after reporting its exit code', async () => {
    const host = await startHost({ allowCommands: true });
    // A key that is not set: git's own command, exit code 1 (an unknown subcommand would be refused as an alias).
    const { result, events } = await run(host, '[run:git config --get no.such.key]', [git()]);
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain('git config --get no.such.key failed: exit code 1');
    expect(events.at(-1)).toMatchObject({ type: 'tool_result', result: { exitCode: 1, error: 'exit code 1' } });
  });
});
