import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { hostToolCall } from '../lib/host-contract';
import { connectMcp, type FetchFn, type McpConnection } from '../lib/mcp-client';
import { startMcpToolTask } from '../lib/mcp-tasks';
import { McpClientPool } from '../lib/mcp-pool';
import { startAgentHost, type AgentHost } from '../host/server';
import { startTcpProxy, type TcpProxy } from '../test/tcp-proxy';
import { followMcpTask } from './mcp-task-follower';

/** What the client sent (each POST's JSON-RPC method) and whether each response's stream has ended. */
interface Wire {
  posts: string[];
  streams: { method: string; ended: boolean }[];
}

/**
 * The real fetch, watched: the method of every POST, and for every answered request whether the
 * host ended its response (a tasks/result stream ends when the host answers it).
 */
function watchedFetch(wire: Wire): FetchFn {
  return async (url, init) => {
    const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as { method?: string; result?: unknown }) : undefined;
    const method = body?.method ?? (body ? 'response' : String(init?.method));
    if (init?.method === 'POST') wire.posts.push(method);
    const response = await fetch(url, init);
    if (!response.body) return response;
    const stream = { method, ended: false };
    wire.streams.push(stream);
    const watched = response.body.pipeThrough(new TransformStream({ flush: () => void (stream.ended = true) }));
    return new Response(watched, { status: response.status, statusText: response.statusText, headers: response.headers });
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('cancelling task-backed runs against the reference host', () => {
  let host: AgentHost;
  let dir: string;
  let connection: McpConnection;
  const wire: Wire = { posts: [], streams: [] };

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'follower-'));
    host = await startAgentHost({ token: randomUUID(), stepDelayMs: 1, workspaceRoot: dir });
    connection = await connectMcp(
      { serverId: 'host', url: host.url, transport: 'streamable-http', token: host.token },
      30_000,
      watchedFetch(wire),
    );
  });
  afterAll(async () => {
    await connection?.client.close();
    await host?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('20 runs cancelled at once: one tasks/cancel each and nothing else, and the host ends every tasks/result stream', async () => {
    const runs = Array.from({ length: 20 }, () => ({ executionId: randomUUID(), cancel: new AbortController() }));
    const follows = await Promise.all(
      runs.map(async ({ executionId, cancel }) => {
        const call = hostToolCall('execute_prompt', {
          executionId,
          agentId: 'agent-1',
          agentName: 'Agent',
          prompt: 'hang [hang]',
          allowedTools: [],
        });
        // As prompt-run.ts does: the run's one signal for the start and the follow.
        const started = await startMcpToolTask(connection.client, call, executionId, 60_000, { timeoutMs: 30_000, signal: cancel.signal });
        if (!('task' in started)) throw new Error('the host answered inline');
        const follow = followMcpTask({
          connection,
          mcpTaskId: started.task.taskId,
          signal: cancel.signal,
          deadline: Date.now() + 120_000,
          requestTimeoutMs: 30_000,
          onProgress: () => undefined,
        });
        follow.catch(() => undefined);
        // In an object: an async function returning the promise itself would wait for it.
        return { follow };
      }),
    );
    await until(() => host.taskRequests.filter((r) => r.method === 'tasks/result').length >= runs.length, 'every tasks/result');
    const before = wire.posts.length;

    for (const run of runs) run.cancel.abort(new Error('cancelled by request'));
    for (const { follow } of follows) await expect(follow).rejects.toThrow('cancelled by request');
    await Promise.all(runs.map(({ executionId }) => host.waitForCancellation(executionId)));

    // Before: a notifications/cancelled for each tasks/result and one for each start answered
    // long ago (the SDK keeps a finished request's abort listener): three POSTs per run, each on
    // a new connection, the tasks/cancel queued among them.
    expect(wire.posts.slice(before)).toEqual(runs.map(() => 'tasks/cancel'));
    // Before: a cancelled tasks/result got no answer, its stream open at the host for good.
    const results = wire.streams.filter((s) => s.method === 'tasks/result');
    expect(results).toHaveLength(runs.length);
    await until(() => results.every((s) => s.ended), 'the host to end every tasks/result stream');
  });
});

describe('cancelling task-backed runs on a pooled connection', () => {
  let host: AgentHost;
  let proxy: TcpProxy;
  let dir: string;
  let pool: McpClientPool;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'follower-pool-'));
    host = await startAgentHost({ token: randomUUID(), stepDelayMs: 1, workspaceRoot: dir });
    // Between the worker and the host, to count the TCP connections the worker opens.
    proxy = await startTcpProxy(host.port);
    pool = new McpClientPool({ timeoutMs: 30_000 });
  });
  afterAll(async () => {
    await pool?.closeAll();
    await proxy?.close();
    await host?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('the cancels of runs whose tasks/result streams hold their sockets go over the warm sockets of their starts: no new connection', async () => {
    const target = {
      serverId: 'host',
      url: host.url.replace(`:${host.port}`, `:${proxy.port}`),
      transport: 'streamable-http' as const,
      token: host.token,
    };
    await pool.withConnection(target, async (connection) => {
      const runs = Array.from({ length: 5 }, () => ({ executionId: randomUUID(), cancel: new AbortController() }));
      const follows = await Promise.all(
        runs.map(async ({ executionId, cancel }) => {
          const call = hostToolCall('execute_prompt', {
            executionId,
            agentId: 'agent-1',
            agentName: 'Agent',
            prompt: 'hang [hang]',
            allowedTools: [],
          });
          const started = await startMcpToolTask(connection.client, call, executionId, 60_000, {
            timeoutMs: 30_000,
            signal: cancel.signal,
          });
          if (!('task' in started)) throw new Error('the host answered inline');
          const follow = followMcpTask({
            connection,
            mcpTaskId: started.task.taskId,
            signal: cancel.signal,
            deadline: Date.now() + 120_000,
            requestTimeoutMs: 30_000,
            onProgress: () => undefined,
            // No tasks/get meanwhile, which would open sockets again just before the cancels.
            pollMs: 120_000,
          });
          follow.catch(() => undefined);
          return { follow };
        }),
      );
      await until(() => host.taskRequests.filter((r) => r.method === 'tasks/result').length >= runs.length, 'every tasks/result');
      // Not a wait for something: the scenario. Runs are cancelled seconds after their start,
      // longer than Node's default keep-alive (5 s) and undici's (4 s), and the warm sockets
      // must still be there.
      await new Promise((r) => setTimeout(r, 6000));
      const opened = proxy.connections;

      for (const run of runs) run.cancel.abort(new Error('cancelled by request'));
      for (const { follow } of follows) await expect(follow).rejects.toThrow('cancelled by request');
      await Promise.all(runs.map(({ executionId }) => host.waitForCancellation(executionId)));

      // Before: one pool of sockets, each start's socket taken by its run's tasks/result, so
      // every tasks/cancel opened a connection of its own (5 here, 20 in the benchmark); and
      // idle sockets closed after 3 s (the host's 5 s keep-alive less undici's margin).
      expect(host.taskRequests.filter((r) => r.method === 'tasks/cancel')).toHaveLength(runs.length);
      expect(proxy.connections).toBe(opened);
    });
  });

  it('runs started one after another keep a warm socket each: cancelling 20 at once opens no connection', async () => {
    const target = {
      serverId: 'host',
      url: host.url.replace(`:${host.port}`, `:${proxy.port}`),
      transport: 'streamable-http' as const,
      token: host.token,
    };
    await pool.withConnection(target, async (connection) => {
      const runs = Array.from({ length: 20 }, () => ({ executionId: randomUUID(), cancel: new AbortController(), taskId: '' }));
      const follows: Promise<unknown>[] = [];
      // One at a time: the starts themselves need one short-request socket, not 20.
      for (const run of runs) {
        const call = hostToolCall('execute_prompt', {
          executionId: run.executionId,
          agentId: 'agent-1',
          agentName: 'Agent',
          prompt: 'hang [hang]',
          allowedTools: [],
        });
        const started = await startMcpToolTask(connection.client, call, run.executionId, 60_000, { timeoutMs: 30_000 });
        if (!('task' in started)) throw new Error('the host answered inline');
        run.taskId = started.task.taskId;
        const follow = followMcpTask({
          connection,
          mcpTaskId: run.taskId,
          signal: run.cancel.signal,
          deadline: Date.now() + 120_000,
          requestTimeoutMs: 30_000,
          onProgress: () => undefined,
          pollMs: 120_000,
        });
        follow.catch(() => undefined);
        follows.push(follow);
      }
      const ours = (r: { taskId?: string }) => runs.some((run) => run.taskId === r.taskId);
      await until(
        () => host.taskRequests.filter((r) => r.method === 'tasks/result' && ours(r)).length >= runs.length,
        'every tasks/result',
      );
      // Before: the sockets of the starts only (one here); 15 of the cancels opened one each, 4 waited for an answer.
      await until(() => pool.controlSockets(target.url) >= runs.length, 'a warm short-request socket per task');
      const opened = proxy.connections;

      for (const run of runs) run.cancel.abort(new Error('cancelled by request'));
      for (const follow of follows) await expect(follow).rejects.toThrow('cancelled by request');
      await Promise.all(runs.map(({ executionId }) => host.waitForCancellation(executionId)));

      expect(host.taskRequests.filter((r) => r.method === 'tasks/cancel' && ours(r))).toHaveLength(runs.length);
      expect(proxy.connections).toBe(opened);
    });
  });
});
