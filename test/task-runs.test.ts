import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Execution } from '../entities';
import { freePort } from '../dev/free-port';
import type { AgentExecutionPayload } from '../domain/events';
import { startAgentHost, type AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, hostWithAgent, registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';
import { startTcpProxy, type TcpProxy } from './tcp-proxy';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

/** The reference host as its own program (host/main.ts, script engine, a data dir if given), so a test can SIGKILL it. */
async function spawnHostProcess(port: number, token: string, dataDir?: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'host', 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: {
      ...process.env,
      HOST_TOKEN: token,
      HOST_PORT: String(port),
      HOST_ENGINE: 'script',
      ...(dataDir ? { HOST_DATA_DIR: dataDir } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('agent host listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the host process exited (${code})`)));
  });
  return child;
}

/** What a person reads in a run's log: the events without ids, times, attempts and seq. */
function visible(events: AgentExecutionPayload[]) {
  return events.map((e) => ({
    phase: e.phase,
    status: e.status,
    output: e.output,
    progress: e.progress,
    data: e.data,
    toolCall: e.toolCall,
  }));
}

describe('task-backed runs (a task-capable reference host beside a plain one)', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  const hosts: AgentHost[] = [];
  const children: ChildProcess[] = [];
  const proxies: TcpProxy[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Task Runs Org');
    worker = await startTestWorker(ctx);
  });
  afterAll(async () => {
    await worker?.stop();
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const proxy of proxies) await proxy.close();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  const withAgent = (options: Parameters<typeof registerHost>[2] = {}) => hostWithAgent(http, admin, hosts, options);

  async function run(agentId: string, prompt: string): Promise<string> {
    const res = await http.post(`/api/agents/${agentId}/execute`).auth(admin.accessToken, { type: 'bearer' }).send({ prompt }).expect(202);
    return res.body.executionId as string;
  }

  async function finished(executionId: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return waitFor(
      async () => {
        const r = await http.get(`/api/executions/${executionId}`).auth(admin.accessToken, { type: 'bearer' });
        return FINAL.includes(r.body.status) ? (r.body as Record<string, unknown>) : undefined;
      },
      timeoutMs,
      100,
    );
  }

  async function events(executionId: string): Promise<AgentExecutionPayload[]> {
    return (await http.get(`/api/executions/${executionId}/events`).query({ limit: 1000 }).auth(admin.accessToken, { type: 'bearer' })).body
      .items as AgentExecutionPayload[];
  }

  async function taskIdOf(executionId: string): Promise<string | undefined> {
    return (await ctx.orm.em.fork().findOneOrFail(Execution, executionId)).mcpTaskId;
  }

  it('runs the same prompt to the same events and outcome on a task host and on a plain host', async () => {
    const tasked = await withAgent();
    const plain = await withAgent({ tasks: false });
    const prompt = 'same work [steps:6] [delay:30]';
    const [onTask, onPlain] = await Promise.all([run(tasked.agent.id, prompt), run(plain.agent.id, prompt)]);
    const [a, b] = await Promise.all([finished(onTask), finished(onPlain)]);
    expect(a).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    expect(b).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    expect(a.output).toBe(b.output);
    expect(a.output).toContain('chunk 6');
    expect(visible(await events(onTask))).toEqual(visible(await events(onPlain)));

    // The task host ran it as a task (its id recorded on the row); the plain host as a call.
    expect(await taskIdOf(onTask)).toEqual(expect.any(String));
    expect(await taskIdOf(onPlain)).toBeFalsy();
    expect(tasked.host.taskRequests.some((r) => r.method === 'tasks/result')).toBe(true);
    expect(plain.host.taskRequests).toHaveLength(0);
  }, 60_000);

  it('cancel: the host receives tasks/cancel for the task, its run stops, and the execution is CANCELLED', async () => {
    const { host, agent } = await withAgent();
    const executionId = await run(agent.id, 'long [steps:400] [delay:50]');
    await waitFor(async () => (await events(executionId)).some((e) => e.phase === 'output'), 20_000);
    const taskId = await taskIdOf(executionId);
    expect(taskId).toEqual(expect.any(String));
    await http.post(`/api/executions/${executionId}/cancel`).auth(admin.accessToken, { type: 'bearer' }).expect(202);
    expect(await finished(executionId)).toMatchObject({ status: 'CANCELLED', error: 'cancelled by request' });
    await waitFor(async () => host.taskRequests.some((r) => r.method === 'tasks/cancel' && r.taskId === taskId), 10_000);
    await waitFor(async () => host.running() === 0, 10_000);
  }, 60_000);

  it('a dropped connection mid-stream: the run re-attaches to its task (one tools/call) and completes', async () => {
    const host = await startAgentHost({ token: `host-token-${randomUUID()}`, stepDelayMs: 5 });
    hosts.push(host);
    const proxy = await startTcpProxy(host.port);
    proxies.push(proxy);
    const server = await http
      .post('/api/servers')
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ name: `proxied-${proxy.port}`, url: `http://127.0.0.1:${proxy.port}/mcp`, masterToken: host.token })
      .expect(201);
    const agent = await activeAgent(http, admin, server.body.id);
    const executionId = await run(agent.id, 'long [steps:40] [delay:50]');
    await waitFor(async () => (await events(executionId)).filter((e) => e.phase === 'output').length >= 3, 20_000);
    const taskId = await taskIdOf(executionId);
    proxy.dropAll();

    expect(await finished(executionId, 45_000)).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    expect(host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId)).toHaveLength(1);
    expect(host.taskRequests.filter((r) => r.method === 'tasks/result' && r.taskId === taskId).length).toBeGreaterThanOrEqual(2);
    const log = await events(executionId);
    expect(log.map((e) => e.seq)).toEqual(log.map((_, i) => i + 1));
    expect(
      log.some((e) => e.phase === 'status' && (e.data as { reattach?: boolean; taskId?: string } | undefined)?.reattach === true),
    ).toBe(true);
    expect(log.filter((e) => e.phase === 'output' && e.output === 'chunk 40\n')).toHaveLength(1);
  }, 60_000);

  it('a host killed mid-run that keeps its tasks (data dir) reports the task lost: FAILED with the sentence of the host, never COMPLETED', async () => {
    const port = await freePort();
    const token = `host-token-${randomUUID()}`;
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-host-data-'));
    try {
      const first = await spawnHostProcess(port, token, dataDir);
      children.push(first);
      const server = await http
        .post('/api/servers')
        .auth(admin.accessToken, { type: 'bearer' })
        .send({ name: `kept-${port}`, url: `http://127.0.0.1:${port}/mcp`, masterToken: token })
        .expect(201);
      const agent = await activeAgent(http, admin, server.body.id);
      const executionId = await run(agent.id, 'long [steps:400] [delay:50]');
      await waitFor(async () => (await events(executionId)).some((e) => e.phase === 'output'), 20_000);
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      const again = await spawnHostProcess(port, token, dataDir);
      children.push(again);
      expect(await finished(executionId, 45_000)).toMatchObject({
        status: 'FAILED',
        error: 'the agent reported an error: the agent host restarted while this run was in progress; its work was lost',
      });
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('a task the host forgot (its process killed, restarted without a data dir) ends FAILED with a sentence that says so, never COMPLETED', async () => {
    const port = await freePort();
    const token = `host-token-${randomUUID()}`;
    const first = await spawnHostProcess(port, token);
    children.push(first);
    const server = await http
      .post('/api/servers')
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ name: `killed-${port}`, url: `http://127.0.0.1:${port}/mcp`, masterToken: token })
      .expect(201);
    const agent = await activeAgent(http, admin, server.body.id);
    const executionId = await run(agent.id, 'long [steps:400] [delay:50]');
    await waitFor(async () => (await events(executionId)).some((e) => e.phase === 'output'), 20_000);
    const taskId = await taskIdOf(executionId);
    expect(taskId).toEqual(expect.any(String));
    // The host dies without a word; the same server (port, token) comes back with no memory of its tasks.
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const again = await startAgentHost({ token, port, stepDelayMs: 5 });
    hosts.push(again);
    const done = await finished(executionId, 45_000);
    expect(done).toMatchObject({
      status: 'FAILED',
      error: `the server no longer knows task ${taskId} (expired, or the host restarted); the run's outcome is unknown`,
    });
    expect(again.calls.filter((c) => c.tool === 'execute_prompt')).toHaveLength(0);
    expect(again.taskRequests.some((r) => r.taskId === taskId)).toBe(true);
  }, 90_000);
});
