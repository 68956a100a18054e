import { randomUUID } from 'node:crypto';
import request from 'supertest';
import type { AgentHost } from '../host/server';
import { NO_FLEET_ACCESS } from '../host/engines/delegation';
import { startApiServer, type ApiServer } from '../api/server';
import { registerAccount, type Account, type Http } from './api';
import { delegationTree, registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

/**
 * Delegation end to end (issue 22): a MASTER's run on the reference host's script engine
 * delegates with `[delegate:AGENT:PROMPT]`; the engine calls the fleet's `/mcp` with the run
 * token the worker sent it, and the children are runs of the WORKERs on the same host. Nothing
 * here calls `/mcp` itself: only the engine does, at the URL the worker minted (this API's).
 */
describe('delegation end to end (script engine → /mcp → child runs)', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let master: { id: string; name: string };
  let workers: { id: string; name: string }[];

  beforeAll(async () => {
    ctx = await createTestContext();
    api = await startApiServer(ctx, 0, '127.0.0.1');
    // The worker sends runs this API's /mcp, not the configured default (the API listens on a free port).
    const mcpUrl = new URL('/mcp', api.url).toString();
    worker = await startTestWorker({ ...ctx, config: { ...ctx.config, delegation: { ...ctx.config.delegation, mcpUrl } } });
    http = request(api.url);
    admin = await registerAccount(http, 'Delegation E2E Org');
    let serverId: string;
    ({ host, serverId } = await registerHost(http, admin));
    ({ master, workers } = await delegationTree(http, admin, serverId, ['lead', 'w1', 'w2']));
  });
  afterAll(async () => {
    await host?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  const auth = { type: 'bearer' } as const;

  async function execute(agentId: string, prompt: string): Promise<string> {
    const res = await http.post(`/api/agents/${agentId}/execute`).auth(admin.accessToken, auth).send({ prompt }).expect(202);
    return res.body.executionId;
  }

  async function execution(id: string) {
    return (await http.get(`/api/executions/${id}`).auth(admin.accessToken, auth).expect(200)).body;
  }

  async function ended(id: string) {
    return waitFor(async () => {
      const body = await execution(id);
      return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(body.status) && body;
    }, 120_000);
  }

  async function delegationEvents(id: string): Promise<Record<string, unknown>[]> {
    const items: { phase: string; data?: Record<string, unknown> }[] = (
      await http.get(`/api/executions/${id}/events`).auth(admin.accessToken, auth).expect(200)
    ).body.items;
    return items.filter((e) => e.phase === 'delegation').map((e) => e.data ?? {});
  }

  it("a MASTER's script delegates to two WORKERs in parallel: both children complete, and the parent prints their outputs", async () => {
    const parent = await execute(master.id, '[delegate:w1:first [steps:2]] [delegate:w2:second]');
    const done = await ended(parent);
    expect(done).toMatchObject({ status: 'COMPLETED', parentExecutionId: null });
    // Each child's output on a line of its own, `AGENT: OUTPUT`, in prompt order.
    expect(done.output).toContain('w1: chunk 1\nchunk 2\nw2: script engine: second\n');

    expect(done.children).toHaveLength(2);
    const children = await Promise.all((done.children as { id: string }[]).map((c) => execution(c.id)));
    const byAgent = new Map(children.map((c) => [c.agentId, c]));
    expect(byAgent.get(workers[0]!.id)).toMatchObject({
      status: 'COMPLETED',
      parentExecutionId: parent,
      trigger: 'delegation',
      output: 'chunk 1\nchunk 2\n',
    });
    expect(byAgent.get(workers[1]!.id)).toMatchObject({
      status: 'COMPLETED',
      parentExecutionId: parent,
      trigger: 'delegation',
      output: 'script engine: second',
    });
    expect(done.children).toEqual(expect.arrayContaining(children.map((c) => expect.objectContaining({ id: c.id, status: 'COMPLETED' }))));

    const parentLog = await delegationEvents(parent);
    for (const child of children) {
      expect(await delegationEvents(child.id)).toContainEqual(expect.objectContaining({ event: 'delegated', parentExecutionId: parent }));
      expect(parentLog).toContainEqual(expect.objectContaining({ event: 'child_started', childExecutionId: child.id }));
      expect(parentLog).toContainEqual(expect.objectContaining({ event: 'child_ended', childExecutionId: child.id, status: 'COMPLETED' }));
    }
    // The children ran on the host as runs of their own, without fleet access (WORKERs).
    for (const child of children) {
      const call = host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === child.id);
      expect(call?.args).not.toHaveProperty('fleet');
    }
  });

  it('cancelling the parent cancels both hanging children, down to the host', async () => {
    const tag = randomUUID();
    const parent = await execute(master.id, `[delegate:w1:[hang] one ${tag}] [delegate:w2:[hang] two ${tag}]`);
    // Both children reached the host before the cancel.
    const children = await waitFor(async () => {
      const { children: found } = await execution(parent);
      const ids = (found as { id: string }[]).map((c) => c.id);
      return ids.length === 2 && ids.every((id) => host.calls.some((c) => c.tool === 'execute_prompt' && c.args.executionId === id)) && ids;
    });
    await http.post(`/api/executions/${parent}/cancel`).auth(admin.accessToken, auth).expect(202);

    expect(await ended(parent)).toMatchObject({ status: 'CANCELLED' });
    for (const id of children) {
      expect(await ended(id)).toMatchObject({ status: 'CANCELLED', parentExecutionId: parent });
      await host.waitForCancellation(id, 60_000);
    }
    // The parent's own run was stopped at the host too, and none of the three still runs there.
    await host.waitForCancellation(parent, 60_000);
    await waitFor(async () => host.running() === 0);
  });

  it("a WORKER's run (no subordinates, so no fleet access) that delegates fails with the engine's reason", async () => {
    const run = await execute(workers[0]!.id, '[delegate:w2:hello]');
    const done = await ended(run);
    expect(done.status).toBe('FAILED');
    expect(done.error).toContain(`delegate to w2 refused: ${NO_FLEET_ACCESS}`);
    expect(done.children).toEqual([]);
  });
});
