import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InMemoryTaskMessageQueue, InMemoryTaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/stores/in-memory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { RELATED_TASK_META_KEY, type Progress } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { followMcpTask, McpTaskCancelledByServer, McpTaskForgotten } from '../activities/mcp-task-follower';
import { connectMcp, type McpConnection } from './mcp-client';
import { runsAsMcpTask, startMcpToolTask } from './mcp-tasks';

/**
 * A minimal task server on the official SDK (stateless Streamable HTTP, one task store and
 * message queue for every request): `work` runs `steps` steps in the background, queueing one
 * progress notification per step for `tasks/result` to deliver. Tests of the adapter and the
 * follower; the reference host's own tasks are tested end to end in test/task-runs.test.ts.
 */
async function startTaskServer(options: { tasks?: boolean; stepMs?: number } = {}) {
  const store = new InMemoryTaskStore();
  const queue = new InMemoryTaskMessageQueue();
  const token = randomBytes(8).toString('hex');
  const methods: string[] = [];
  const cancelled = new Set<string>();

  function build(): McpServer {
    const mcp = new McpServer(
      { name: 'task-test', version: '1.0.0' },
      options.tasks === false
        ? { capabilities: {} }
        : {
            capabilities: { tasks: { list: {}, cancel: {}, requests: { tools: { call: {} } } } },
            taskStore: store,
            taskMessageQueue: queue,
            defaultTaskPollInterval: 20,
          },
    );
    if (options.tasks === false) {
      mcp.registerTool('work', { inputSchema: { steps: z.number() } }, async ({ steps }, extra) => {
        const progressToken = extra._meta?.progressToken;
        for (let i = 1; i <= steps && progressToken !== undefined; i++)
          await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: i } });
        return { content: [{ type: 'text', text: 'plain' }] };
      });
      return mcp;
    }
    mcp.experimental.tasks.registerToolTask(
      'work',
      { inputSchema: { steps: z.number() }, execution: { taskSupport: 'optional' } },
      {
        createTask: async ({ steps }, extra) => {
          const task = await extra.taskStore.createTask({ ttl: extra.taskRequestedTtl ?? 60_000, pollInterval: 20 });
          const token = extra._meta?.progressToken ?? 'none';
          void (async () => {
            for (let i = 1; i <= steps; i++) {
              await new Promise((r) => setTimeout(r, options.stepMs ?? 10));
              // Stops when cancelled either way, or when the server is closed (its store emptied).
              const now = await store.getTask(task.taskId);
              if (cancelled.has(task.taskId) || !now || now.status !== 'working') return;
              await queue.enqueue(task.taskId, {
                type: 'notification',
                message: {
                  jsonrpc: '2.0',
                  method: 'notifications/progress',
                  params: { progressToken: token, progress: i, total: steps, _meta: { [RELATED_TASK_META_KEY]: { taskId: task.taskId } } },
                },
                timestamp: Date.now(),
              });
            }
            await store.storeTaskResult(task.taskId, 'completed', { content: [{ type: 'text', text: `done ${steps}` }] });
          })().catch(() => undefined);
          return { task };
        },
        getTask: async (_args, extra) => (await extra.taskStore.getTask(extra.taskId))!,
        getTaskResult: async (_args, extra) => (await extra.taskStore.getTaskResult(extra.taskId)) as never,
      },
    );
    return mcp;
  }

  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401).end();
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const parsed = body ? (JSON.parse(body) as { method?: string; params?: { taskId?: string } }) : undefined;
      if (parsed?.method) methods.push(parsed.method);
      if (parsed?.method === 'tasks/cancel' && parsed.params?.taskId) cancelled.add(parsed.params.taskId);
      const mcp = build();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => void mcp.close());
      void mcp.connect(transport).then(() => transport.handleRequest(req, res, parsed));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    target: { serverId: `s-${port}`, url: `http://127.0.0.1:${port}/mcp`, transport: 'streamable-http' as const, token },
    methods,
    store,
    close: () => {
      store.cleanup();
      return new Promise<void>((r) => server.close(() => r()));
    },
    closeAll: () => server.closeAllConnections(),
  };
}

describe('MCP tasks adapter (lib/mcp-tasks.ts) and follower against an SDK task server', () => {
  let server: Awaited<ReturnType<typeof startTaskServer>>;
  let connection: McpConnection;

  beforeAll(async () => {
    server = await startTaskServer();
    connection = await connectMcp(server.target, 5000);
  });
  afterAll(async () => {
    await connection?.client.close();
    server.closeAll();
    await server?.close();
  });

  it('detects task support from the capability and the tool, with one tools/list per connection', async () => {
    expect(await runsAsMcpTask(connection, 'work', 5000)).toBe(true);
    expect(await runsAsMcpTask(connection, 'other', 5000)).toBe(false);
    expect(server.methods.filter((m) => m === 'tools/list')).toHaveLength(1);

    const plain = await startTaskServer({ tasks: false });
    const plainConnection = await connectMcp(plain.target, 5000);
    try {
      expect(await runsAsMcpTask(plainConnection, 'work', 5000)).toBe(false);
      // No capability: not even a tools/list is spent on finding out.
      expect(plain.methods).not.toContain('tools/list');
    } finally {
      await plainConnection.client.close();
      plain.closeAll();
      await plain.close();
    }
  });

  it('starts a task and follows it: every progress notification, then the result', async () => {
    const started = await startMcpToolTask(connection.client, { name: 'work', arguments: { steps: 5 } }, 'exec-1', 60_000, {
      timeoutMs: 5000,
    });
    expect('task' in started).toBe(true);
    const taskId = (started as { task: { taskId: string } }).task.taskId;
    const seen: Progress[] = [];
    const result = await followMcpTask({
      connection,
      mcpTaskId: taskId,
      signal: new AbortController().signal,
      deadline: Date.now() + 20_000,
      requestTimeoutMs: 5000,
      onProgress: (p) => seen.push(p),
      progressToken: 'exec-1',
    });
    expect(result.content).toEqual([{ type: 'text', text: 'done 5' }]);
    expect(seen.map((p) => p.progress)).toEqual([1, 2, 3, 4, 5]);
    expect(connection.progressListeners.size).toBe(0);
  });

  it('re-attaches from a new connection: the rest of the events and the result, no second tools/call', async () => {
    const started = (await startMcpToolTask(connection.client, { name: 'work', arguments: { steps: 20 } }, 'exec-2', 60_000, {
      timeoutMs: 5000,
    })) as { task: { taskId: string } };
    const calls = server.methods.filter((m) => m === 'tools/call').length;
    const other = await connectMcp(server.target, 5000);
    try {
      const seen: number[] = [];
      const result = await followMcpTask({
        connection: other,
        mcpTaskId: started.task.taskId,
        signal: new AbortController().signal,
        deadline: Date.now() + 20_000,
        requestTimeoutMs: 5000,
        onProgress: (p) => seen.push(p.progress),
      });
      expect(result.content).toEqual([{ type: 'text', text: 'done 20' }]);
      expect(seen.at(-1)).toBe(20);
      expect(server.methods.filter((m) => m === 'tools/call')).toHaveLength(calls);
    } finally {
      await other.client.close();
    }
  });

  it('a task the server does not know is McpTaskForgotten, with the sentence', async () => {
    await expect(
      followMcpTask({
        connection,
        mcpTaskId: 'no-such-task',
        signal: new AbortController().signal,
        deadline: Date.now() + 5000,
        requestTimeoutMs: 5000,
        onProgress: () => undefined,
      }),
    ).rejects.toThrow(new McpTaskForgotten('no-such-task'));
    expect(new McpTaskForgotten('t1').message).toBe(
      "the server no longer knows task t1 (expired, or the host restarted); the run's outcome is unknown",
    );
  });

  it('a task the server cancelled on its own is McpTaskCancelledByServer', async () => {
    const started = (await startMcpToolTask(connection.client, { name: 'work', arguments: { steps: 1000 } }, 'exec-4', 60_000, {
      timeoutMs: 5000,
    })) as { task: { taskId: string } };
    const follow = followMcpTask({
      connection,
      mcpTaskId: started.task.taskId,
      signal: new AbortController().signal,
      deadline: Date.now() + 20_000,
      requestTimeoutMs: 5000,
      onProgress: () => undefined,
    });
    setTimeout(() => void server.store.updateTaskStatus(started.task.taskId, 'cancelled', 'stopped by the operator'), 200);
    await expect(follow).rejects.toThrow(new McpTaskCancelledByServer());
  });

  it('cancelling the follow sends tasks/cancel for the task', async () => {
    const started = (await startMcpToolTask(connection.client, { name: 'work', arguments: { steps: 1000 } }, 'exec-3', 60_000, {
      timeoutMs: 5000,
    })) as { task: { taskId: string } };
    const abort = new AbortController();
    const follow = followMcpTask({
      connection,
      mcpTaskId: started.task.taskId,
      signal: abort.signal,
      deadline: Date.now() + 20_000,
      requestTimeoutMs: 5000,
      onProgress: () => undefined,
    });
    setTimeout(() => abort.abort(new Error('cancelled')), 200);
    await expect(follow).rejects.toThrow();
    expect(server.methods).toContain('tasks/cancel');
    expect((await server.store.getTask(started.task.taskId))?.status).toBe('cancelled');
  });

  it('progress of a plain call still reaches its onprogress (mcp-client.ts delegates to the SDK handler, a private field)', async () => {
    const plain = await startTaskServer({ tasks: false });
    const plainConnection = await connectMcp(plain.target, 5000);
    try {
      const seen: number[] = [];
      const result = await plainConnection.client.callTool({ name: 'work', arguments: { steps: 3 } }, undefined, {
        onprogress: (p) => seen.push(p.progress),
      });
      expect(result.content).toEqual([{ type: 'text', text: 'plain' }]);
      expect(seen).toEqual([1, 2, 3]);
    } finally {
      await plainConnection.client.close();
      plain.closeAll();
      await plain.close();
    }
  });
});
