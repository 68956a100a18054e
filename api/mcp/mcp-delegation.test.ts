import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { AgentHost } from '../../host/server';
import type { FleetAccess } from '../../lib/host-contract';
import { mintRunToken } from '../../domain/runs/run-token';
import { startApiServer, type ApiServer } from '../server';
import { registerAccount, type Account, type Http } from '../../test/api';
import { activeAgent, delegationTree, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';
import { DELEGATION_CALL_META } from '../../lib/host-contract';

/**
 * Delegation through the MCP endpoint (issue 22): a run whose agent has subordinates gets a run
 * token in execute_prompt's `fleet`, and with it lists, delegates to, reads and cancels its own
 * children, which are child workflows of its run. The real stack: API, worker, Temporal,
 * PostgreSQL and a reference host (script engine) that records what it received.
 */
describe('delegation with a run token (POST /mcp)', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  let master: { id: string; name: string };
  let workers: { id: string; name: string }[];
  let outsider: { id: string; name: string };
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Delegation Org');
    ({ host, serverId } = await registerHost(http, admin));
    closers.push(() => host.close());
    ({ master, workers } = await delegationTree(http, admin, serverId));
    outsider = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  const auth = { type: 'bearer' } as const;

  async function execute(agentId: string, prompt: string): Promise<string> {
    const res = await http.post(`/api/agents/${agentId}/execute`).auth(admin.accessToken, auth).send({ prompt }).expect(202);
    return res.body.executionId;
  }

  /** What the host received for the run's execute_prompt (its latest attempt). */
  async function hostArgs(executionId: string): Promise<Record<string, unknown>> {
    return waitFor(async () => host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId).at(-1)?.args);
  }

  async function execution(id: string) {
    return (await http.get(`/api/executions/${id}`).auth(admin.accessToken, auth).expect(200)).body;
  }

  async function ended(id: string, status?: string) {
    return waitFor(async () => {
      const body = await execution(id);
      return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(body.status) && (!status || body.status === status) && body;
    }, 120_000);
  }

  async function connect(token: string): Promise<Client> {
    const client = new Client({ name: 'delegation-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL('/mcp', api.url), {
      requestInit: { headers: { Authorization: `Bearer ${token}` } },
    });
    await client.connect(transport);
    closers.push(() => client.close());
    return client;
  }

  /** A hanging run of `agentId` with its token (it has subordinates). */
  async function hangingRun(agentId: string): Promise<{ executionId: string; fleet: FleetAccess; client: Client }> {
    const executionId = await execute(agentId, `[hang] ${randomUUID()}`);
    const fleet = (await hostArgs(executionId)).fleet as FleetAccess;
    return { executionId, fleet, client: await connect(fleet.token) };
  }

  const structured = (result: unknown) => (result as CallToolResult).structuredContent as Record<string, unknown>;
  const errorText = (result: unknown) => {
    expect((result as CallToolResult).isError).toBe(true);
    return ((result as CallToolResult).content[0] as { text: string }).text;
  };

  async function events(
    id: string,
  ): Promise<{ phase: string; status?: string; parentExecutionId?: string; data?: Record<string, unknown> }[]> {
    return (await http.get(`/api/executions/${id}/events`).auth(admin.accessToken, auth).expect(200)).body.items;
  }

  async function cancel(id: string) {
    await http.post(`/api/executions/${id}/cancel`).auth(admin.accessToken, auth).expect(202);
  }

  it("sends a run token to a run whose agent has subordinates, and none to a WORKER's run", async () => {
    const parent = await execute(master.id, `[hang] ${randomUUID()}`);
    const fleet = (await hostArgs(parent)).fleet as FleetAccess;
    expect(fleet).toEqual({ url: ctx.config.delegation.mcpUrl, token: expect.stringMatching(/^mcpr_/), expiresAt: expect.any(String) });
    // The token lasts as long as the run may (its 30 min limit), not more.
    const lifetime = Date.parse(fleet.expiresAt) - Date.now();
    expect(lifetime).toBeGreaterThan(25 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(30 * 60_000);

    const child = await execute(workers[0]!.id, 'no subordinates');
    expect(await hostArgs(child)).not.toHaveProperty('fleet');
    await ended(child, 'COMPLETED');
    await cancel(parent);
    await ended(parent, 'CANCELLED');
  });

  it('lists direct subordinates, delegates to two WORKERs in parallel, and records the tree and both logs', async () => {
    const { executionId: parent, client } = await hangingRun(master.id);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toEqual(['list_subordinates', 'delegate', 'get_execution', 'cancel_execution']);

    const listed = await client.callTool({ name: 'list_subordinates', arguments: {} });
    expect((structured(listed).subordinates as { id: string }[]).map((s) => s.id).sort()).toEqual(workers.map((w) => w.id).sort());
    expect((structured(listed).subordinates as Record<string, unknown>[])[0]).toEqual({
      id: expect.any(String),
      name: expect.any(String),
      displayName: expect.any(String),
      role: 'WORKER',
      capabilities: [],
      status: expect.any(String),
    });

    const options = { timeout: 120_000, resetTimeoutOnProgress: true, onprogress: () => undefined };
    const results = await Promise.all(
      workers.map((w, i) =>
        client.callTool({ name: 'delegate', arguments: { agent: i === 0 ? w.name : w.id, prompt: `part ${i}` } }, undefined, options),
      ),
    );
    const answers = results.map(structured);
    expect(answers).toEqual([
      expect.objectContaining({ status: 'COMPLETED', output: 'script engine: part 0' }),
      expect.objectContaining({ status: 'COMPLETED', output: 'script engine: part 1' }),
    ]);

    const children = await Promise.all(answers.map((a) => execution(a.executionId as string)));
    for (const [i, child] of children.entries()) {
      expect(child).toMatchObject({ parentExecutionId: parent, trigger: 'delegation', agentId: workers[i]!.id });
      const childLog = await events(child.id);
      expect(childLog.find((e) => e.phase === 'delegation')?.data).toMatchObject({ event: 'delegated', parentExecutionId: parent });
      // Its status events name its parent (a webhook's execution.failed carries it: domain/events.ts).
      const statuses = childLog.filter((e) => e.phase === 'status');
      expect(statuses.map((e) => e.status)).toContain('COMPLETED');
      expect(statuses.map((e) => e.parentExecutionId)).toEqual(statuses.map(() => parent));
    }
    const tree = await execution(parent);
    expect(tree.parentExecutionId).toBeNull();
    expect(tree.children).toEqual(
      expect.arrayContaining(children.map((c) => ({ id: c.id, agentId: c.agentId, agentName: expect.any(String), status: 'COMPLETED' }))),
    );
    expect(tree.children).toHaveLength(2);
    const parentLog = (await events(parent)).filter((e) => e.phase === 'delegation').map((e) => e.data);
    for (const child of children) {
      expect(parentLog).toContainEqual(expect.objectContaining({ event: 'child_started', childExecutionId: child.id }));
      expect(parentLog).toContainEqual(expect.objectContaining({ event: 'child_ended', childExecutionId: child.id, status: 'COMPLETED' }));
    }

    // Its own children are in reach; another run, another agent's or its own subordinate's, is not.
    expect(structured(await client.callTool({ name: 'get_execution', arguments: { executionId: children[0]!.id } }))).toMatchObject({
      executionId: children[0]!.id,
      status: 'COMPLETED',
    });
    const unrelated = await execute(workers[0]!.id, '[hang] not a child');
    expect(errorText(await client.callTool({ name: 'get_execution', arguments: { executionId: unrelated } }))).toMatch(/not found/);
    expect(errorText(await client.callTool({ name: 'cancel_execution', arguments: { executionId: unrelated } }))).toMatch(/not found/);
    expect(errorText(await client.callTool({ name: 'get_execution', arguments: { executionId: parent } }))).toMatch(/not found/);
    expect((await execution(unrelated)).status).not.toBe('CANCELLED');
    // Nor an agent that is not its direct subordinate.
    expect(errorText(await client.callTool({ name: 'delegate', arguments: { agent: outsider.name, prompt: 'x' } }))).toMatch(
      /not_subordinate/,
    );
    expect(errorText(await client.callTool({ name: 'delegate', arguments: { agent: master.id, prompt: 'x' } }))).toMatch(/not_subordinate/);
    expect(errorText(await client.callTool({ name: 'delegate', arguments: { agent: 'nobody-by-that-name', prompt: 'x' } }))).toBe(
      'Agent: not found',
    );
    await cancel(unrelated);
    await cancel(parent);
    await ended(parent, 'CANCELLED');
  });

  it('cancelling the parent cancels its running children down to the host, then the token is refused', async () => {
    const { executionId: parent, fleet, client } = await hangingRun(master.id);
    const started = await Promise.all(
      workers.map((w) =>
        client.callTool({ name: 'delegate', arguments: { agent: w.id, prompt: `[hang] child of ${parent}`, wait: false } }),
      ),
    );
    const childIds = started.map((r) => structured(r).executionId as string);
    // Both children reached the host before the cancel.
    for (const id of childIds) await hostArgs(id);
    await cancel(parent);
    await ended(parent, 'CANCELLED');
    for (const id of childIds) {
      expect(await ended(id)).toMatchObject({ status: 'CANCELLED' });
      await waitFor(async () => host.cancellations.some((c) => c.executionId === id));
    }
    // The parent's end waited for its children's.
    const parentEnd = Date.parse((await execution(parent)).completedAt);
    for (const id of childIds) expect(Date.parse((await execution(id)).completedAt)).toBeLessThanOrEqual(parentEnd);

    const after = await http
      .post('/mcp')
      .set('Authorization', `Bearer ${fleet.token}`)
      .set('Accept', 'application/json, text/event-stream')
      .send(listRequest(1));
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('run_ended');
  });

  it('a parent that ends on its own cancels the children still running, down to the host', async () => {
    // 20 steps 500 ms apart: time to delegate, then the parent completes.
    const parent = await execute(master.id, `[steps:20] [delay:500] ${randomUUID()}`);
    const fleet = (await hostArgs(parent)).fleet as FleetAccess;
    const client = await connect(fleet.token);
    const started = await client.callTool({
      name: 'delegate',
      arguments: { agent: workers[0]!.id, prompt: '[hang] outlive it', wait: false },
    });
    const child = structured(started).executionId as string;
    await hostArgs(child);
    expect(await ended(parent)).toMatchObject({ status: 'COMPLETED', children: [{ id: child, status: 'CANCELLED' }] });
    expect((await execution(child)).status).toBe('CANCELLED');
    await waitFor(async () => host.cancellations.some((c) => c.executionId === child));
  });

  it('refuses a forged or expired token with 401', async () => {
    const { executionId: parent, fleet } = await hangingRun(master.id);
    const post = (token: string) =>
      http.post('/mcp').set('Authorization', `Bearer ${token}`).set('Accept', 'application/json, text/event-stream').send(listRequest(1));
    const last = fleet.token.at(-1) === 'A' ? 'B' : 'A';
    const forged = await post(fleet.token.slice(0, -1) + last);
    expect([forged.status, forged.body.error.code]).toEqual([401, 'invalid_run_token']);
    // Signed with another secret: not ours.
    const claims = { executionId: parent, organizationId: admin.organizationId, agentId: master.id };
    const otherKey = mintRunToken({ auth: { ...ctx.config.auth, refreshSecret: 'another secret' } }, claims, Date.now() + 60_000);
    expect((await post(otherKey)).body.error.code).toBe('invalid_run_token');
    // Bound to its agent: the same run's token for another agent does not verify.
    const otherAgent = mintRunToken(ctx.config, { ...claims, agentId: workers[0]!.id }, Date.now() + 60_000);
    expect((await post(otherAgent)).body.error.code).toBe('invalid_run_token');
    const expired = await post(mintRunToken(ctx.config, claims, Date.now() - 1000));
    expect([expired.status, expired.body.error.code]).toEqual([401, 'run_token_expired']);
    expect((await post(fleet.token)).status).toBe(200);
    await cancel(parent);
    await ended(parent, 'CANCELLED');
  });

  it('answers a delegate request sent again with the same child', async () => {
    const { executionId: parent, fleet } = await hangingRun(master.id);
    const call = {
      jsonrpc: '2.0',
      id: 41,
      method: 'tools/call',
      params: { name: 'delegate', arguments: { agent: workers[0]!.id, prompt: `[hang] once ${parent}`, wait: false } },
    };
    const send = async () => {
      const res = await http
        .post('/mcp')
        .set('Authorization', `Bearer ${fleet.token}`)
        .set('Accept', 'application/json, text/event-stream')
        .send(call);
      expect(res.status).toBe(200);
      return rpcResult(res.text).structuredContent.executionId as string;
    };
    const first = await send();
    const second = await send();
    expect(second).toBe(first);
    expect((await execution(parent)).children).toHaveLength(1);
    await cancel(parent);
    await ended(parent, 'CANCELLED');
  });

  it('starts one child per call id the client names in _meta, whatever the JSON-RPC id', async () => {
    const { executionId: parent, fleet } = await hangingRun(master.id);
    const send = async (id: number, callId: string) => {
      const res = await http
        .post('/mcp')
        .set('Authorization', `Bearer ${fleet.token}`)
        .set('Accept', 'application/json, text/event-stream')
        .send({
          jsonrpc: '2.0',
          id,
          method: 'tools/call',
          params: {
            name: 'delegate',
            arguments: { agent: workers[0]!.id, prompt: `[hang] alike ${parent}`, wait: false },
            _meta: { [DELEGATION_CALL_META]: callId },
          },
        });
      expect(res.status).toBe(200);
      return rpcResult(res.text).structuredContent.executionId as string;
    };
    // Two calls alike on two sessions (both JSON-RPC id 1): two children, not one.
    const first = await send(1, 'call-a');
    const second = await send(1, 'call-b');
    expect(second).not.toBe(first);
    // The first call sent again (a run tried again numbers its requests anew): its child.
    expect(await send(7, 'call-a')).toBe(first);
    expect((await execution(parent)).children).toHaveLength(2);
    await cancel(parent);
    await ended(parent, 'CANCELLED');
  });

  it('refuses past the fan-out limit, with its reason', async () => {
    const max = ctx.config.delegation.maxChildren;
    const { executionId: parent, client } = await hangingRun(master.id);
    for (let i = 0; i < max; i++)
      expect(
        structured(
          await client.callTool({ name: 'delegate', arguments: { agent: workers[i % 2]!.id, prompt: `[hang] ${i}`, wait: false } }),
        ).executionId,
      ).toEqual(expect.any(String));
    const refused = await client.callTool({
      name: 'delegate',
      arguments: { agent: workers[0]!.id, prompt: '[hang] one more', wait: false },
    });
    expect(errorText(refused)).toMatch(new RegExp(`fan-out limit.*at most ${max}`));
    expect((await execution(parent)).children).toHaveLength(max);
    await cancel(parent);
    await ended(parent, 'CANCELLED');
  });

  it('refuses past depth 3, with its reason', async () => {
    // A chain of five agents: each supervises the next.
    const chain = [master];
    for (let i = 0; i < 4; i++) chain.push(await activeAgent(http, admin, serverId, { supervisorId: chain.at(-1)!.id }));
    const root = await hangingRun(master.id);
    let client = root.client;
    let expiresAt = root.fleet.expiresAt;
    const depths: number[] = [];
    for (let level = 1; level <= 3; level++) {
      const started = await client.callTool({
        name: 'delegate',
        arguments: { agent: chain[level]!.id, prompt: `[hang] level ${level}`, wait: false },
      });
      const childId = structured(started).executionId as string;
      const fleet = (await hostArgs(childId)).fleet as FleetAccess;
      // A child's time limit (its token's lifetime) is at most what its parent has left.
      expect(Date.parse(fleet.expiresAt)).toBeLessThanOrEqual(Date.parse(expiresAt));
      expiresAt = fleet.expiresAt;
      depths.push(level);
      client = await connect(fleet.token);
    }
    const refused = await client.callTool({ name: 'delegate', arguments: { agent: chain[4]!.id, prompt: 'too deep', wait: false } });
    expect(errorText(refused)).toMatch(/depth limit.*3 delegations deep \(at most 3\)/);
    // Cancelling the root cancels the whole chain.
    await cancel(root.executionId);
    await ended(root.executionId, 'CANCELLED');
    const leaf = (await execution(root.executionId)).children[0];
    expect(leaf.status).toBe('CANCELLED');
    expect(depths).toEqual([1, 2, 3]);
  });
});

function listRequest(id: number) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'list_subordinates', arguments: {} } };
}

/** The JSON-RPC result of a /mcp answer, sent as JSON or as an SSE stream. */
function rpcResult(text: string): { structuredContent: Record<string, unknown>; isError?: boolean } {
  const data = text.trim().startsWith('{')
    ? text
    : text
        .split('\n')
        .filter((l) => l.startsWith('data: '))
        .at(-1)!
        .slice(6);
  return JSON.parse(data).result;
}
