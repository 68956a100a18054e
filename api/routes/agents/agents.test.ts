import { randomUUID } from 'node:crypto';
import { AuditLog, Execution, ExecutionStatus, ExecutionTrigger } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { activeAgent, registerHost } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';

describe('agents', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  const hosts: AgentHost[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Agents Org');
    ({ host, serverId } = await registerHost(http, admin));
    hosts.push(host);
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(hosts.map((h) => h.close()));
    await ctx?.close();
  });

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });
  const create = (body: Record<string, unknown>, account = admin) =>
    http
      .post('/api/agents')
      .set(as(account))
      .send({ serverId, name: `a-${randomUUID().slice(0, 8)}`, ...body });

  it('creates agents PENDING_VALIDATION; validate provisions them on the server and makes them ACTIVE', async () => {
    const created = await create({ displayName: 'Builder', role: 'WORKER', capabilities: ['git', 'build', 'git'] }).expect(201);
    expect(created.body).toMatchObject({
      status: 'PENDING_VALIDATION',
      role: 'WORKER',
      capabilities: ['git', 'build'],
      maxConcurrency: 1,
      serverId,
    });
    const validated = await http.post(`/api/agents/${created.body.id}/validate`).set(as(admin)).expect(200);
    expect(validated.body).toMatchObject({ status: 'ACTIVE', validatedById: admin.userId, lastError: null });
    expect(host.calls.filter((c) => c.args.agentId === created.body.id).map((c) => c.tool)).toEqual(['provision_agent', 'activate_agent']);
    expect(host.agents.get(created.body.id)).toMatchObject({ active: true });
    expect((await http.post(`/api/agents/${created.body.id}/validate`).set(as(admin)).expect(409)).body.error.code).toBe('not_pending');
  });

  it('keeps the agent pending with the server’s error when provisioning fails', async () => {
    const failing = await registerHost(http, admin, { failProvision: 'no room for more agents' });
    hosts.push(failing.host);
    const created = await http.post('/api/agents').set(as(admin)).send({ serverId: failing.serverId, name: 'doomed' }).expect(201);
    const res = await http.post(`/api/agents/${created.body.id}/validate`).set(as(admin)).expect(502);
    expect(res.body.error.code).toBe('provision_failed');
    expect(res.body.error.message).toMatch(/no room for more agents/);
    const agent = (await http.get(`/api/agents/${created.body.id}`).set(as(admin)).expect(200)).body;
    expect(agent).toMatchObject({ status: 'PENDING_VALIDATION', lastError: expect.stringMatching(/no room for more agents/) });
  });

  it('only ADMIN and MANAGER validate; OPERATOR and VIEWER cannot create or change agents', async () => {
    const created = await create({}).expect(201);
    for (const role of ['OPERATOR', 'VIEWER']) {
      const member = await addMember(http, admin, role);
      await http.get(`/api/agents/${created.body.id}`).set(as(member)).expect(200);
      await http.post(`/api/agents/${created.body.id}/validate`).set(as(member)).expect(403);
      await create({}, member).expect(403);
      await http.put(`/api/agents/${created.body.id}`).set(as(member)).send({ displayName: 'x' }).expect(403);
      await http.delete(`/api/agents/${created.body.id}`).set(as(member)).expect(403);
    }
    const manager = await addMember(http, admin, 'MANAGER');
    await http.post(`/api/agents/${created.body.id}/validate`).set(as(manager)).expect(200);
  });

  it('PUT can never set status or server, nor create a supervisor cycle; supervisors must share the server', async () => {
    const top = await create({ role: 'SUPERVISOR' }).expect(201);
    const mid = await create({ role: 'SUPERVISOR', supervisorId: top.body.id }).expect(201);
    const leaf = await create({ supervisorId: mid.body.id }).expect(201);

    const sneaky = await http
      .put(`/api/agents/${leaf.body.id}`)
      .set(as(admin))
      .send({ status: 'ACTIVE', serverId: randomUUID() })
      .expect(400);
    expect(sneaky.body.error.details).toEqual(
      expect.arrayContaining([expect.objectContaining({ path: 'body', code: 'unrecognized_keys' })]),
    );
    expect((await http.get(`/api/agents/${leaf.body.id}`).set(as(admin))).body.status).toBe('PENDING_VALIDATION');

    expect(
      (await http.put(`/api/agents/${top.body.id}`).set(as(admin)).send({ supervisorId: leaf.body.id }).expect(409)).body.error.code,
    ).toBe('supervisor_cycle');
    expect(
      (await http.put(`/api/agents/${top.body.id}`).set(as(admin)).send({ supervisorId: top.body.id }).expect(409)).body.error.code,
    ).toBe('supervisor_cycle');

    const other = await registerHost(http, admin);
    hosts.push(other.host);
    const elsewhere = await http.post('/api/agents').set(as(admin)).send({ serverId: other.serverId, name: 'elsewhere' }).expect(201);
    const cross = await http.put(`/api/agents/${leaf.body.id}`).set(as(admin)).send({ supervisorId: elsewhere.body.id }).expect(400);
    expect(cross.body.error.details[0]).toMatchObject({ path: 'body.supervisorId', code: 'other_server' });

    const moved = await http
      .put(`/api/agents/${leaf.body.id}`)
      .set(as(admin))
      .send({ supervisorId: top.body.id, capabilities: ['deploy'] })
      .expect(200);
    expect(moved.body).toMatchObject({ supervisorId: top.body.id, capabilities: ['deploy'] });
    const audit = await ctx.orm.em.fork().findOneOrFail(AuditLog, { resourceId: leaf.body.id, action: 'agent.update' });
    expect(audit.changes).toMatchObject({ supervisorId: { from: mid.body.id, to: top.body.id } });
  });

  it('allows one MASTER per server, without a supervisor', async () => {
    const server = await registerHost(http, admin);
    hosts.push(server.host);
    await http.post('/api/agents').set(as(admin)).send({ serverId: server.serverId, name: 'boss', role: 'MASTER' }).expect(201);
    expect(
      (await http.post('/api/agents').set(as(admin)).send({ serverId: server.serverId, name: 'boss2', role: 'MASTER' }).expect(409)).body
        .error.code,
    ).toBe('master_exists');
  });

  it('shows supervisor, direct subordinates and the whole subtree', async () => {
    const root = await create({ role: 'SUPERVISOR', name: 'root-x' }).expect(201);
    const a = await create({ supervisorId: root.body.id, name: 'child-a' }).expect(201);
    await create({ supervisorId: root.body.id, name: 'child-b' }).expect(201);
    await create({ supervisorId: a.body.id, name: 'grandchild' }).expect(201);
    const detail = await http.get(`/api/agents/${a.body.id}`).set(as(admin)).expect(200);
    expect(detail.body.supervisor).toMatchObject({ id: root.body.id, name: 'root-x' });
    expect(detail.body.subordinates.map((s: { name: string }) => s.name)).toEqual(['grandchild']);
    const tree = await http.get(`/api/agents/${root.body.id}/hierarchy`).set(as(admin)).expect(200);
    expect(tree.body).toMatchObject({
      name: 'root-x',
      children: [
        { name: 'child-a', children: [{ name: 'grandchild', children: [] }] },
        { name: 'child-b', children: [] },
      ],
    });
  });

  it('deleting an agent moves its subordinates up; refused while it has running executions', async () => {
    const boss = await create({ role: 'SUPERVISOR' }).expect(201);
    const middle = await create({ role: 'SUPERVISOR', supervisorId: boss.body.id }).expect(201);
    const worker1 = await create({ supervisorId: middle.body.id }).expect(201);
    const em = ctx.orm.em.fork();
    const running = em.create(Execution, {
      organization: admin.organizationId,
      agent: middle.body.id,
      trigger: ExecutionTrigger.API,
      status: ExecutionStatus.RUNNING,
    });
    await em.flush();
    expect((await http.delete(`/api/agents/${middle.body.id}`).set(as(admin)).expect(409)).body.error.code).toBe('agent_busy');
    running.status = ExecutionStatus.COMPLETED;
    await em.flush();
    await http.delete(`/api/agents/${middle.body.id}`).set(as(admin)).expect(204);
    expect((await http.get(`/api/agents/${worker1.body.id}`).set(as(admin)).expect(200)).body.supervisorId).toBe(boss.body.id);
    expect((await ctx.orm.em.fork().findOneOrFail(Execution, running.id)).agent ?? null).toBeNull();
  });

  it('lists with filters: server, status, role, capability, supervisor, text', async () => {
    const org = await registerAccount(http, 'Filter Org');
    const { host: h, serverId: sid } = await registerHost(http, org);
    hosts.push(h);
    const sup = await http
      .post('/api/agents')
      .set(as(org))
      .send({ serverId: sid, name: 'lead', role: 'SUPERVISOR', capabilities: ['plan'] })
      .expect(201);
    await http
      .post('/api/agents')
      .set(as(org))
      .send({ serverId: sid, name: 'coder', supervisorId: sup.body.id, capabilities: ['git', 'code'] })
      .expect(201);
    await activeAgent(http, org, sid, { name: 'tester', capabilities: ['test'] });
    const list = async (query: Record<string, string>) =>
      ((await http.get('/api/agents').query(query).set(as(org)).expect(200)).body.items as { name: string }[]).map((a) => a.name).sort();
    expect(await list({ serverId: sid })).toEqual(['coder', 'lead', 'tester']);
    expect(await list({ status: 'ACTIVE' })).toEqual(['tester']);
    expect(await list({ role: 'SUPERVISOR' })).toEqual(['lead']);
    expect(await list({ capability: 'git' })).toEqual(['coder']);
    expect(await list({ supervisorId: sup.body.id })).toEqual(['coder']);
    expect(await list({ q: 'COD' })).toEqual(['coder']);
  });

  it('answers 404 to another organisation on every agent route', async () => {
    const created = await create({}).expect(201);
    const stranger = await registerAccount(http, 'Stranger Agents Org');
    const id = created.body.id;
    await http.get(`/api/agents/${id}`).set(as(stranger)).expect(404);
    await http.put(`/api/agents/${id}`).set(as(stranger)).send({ displayName: 'mine' }).expect(404);
    await http.delete(`/api/agents/${id}`).set(as(stranger)).expect(404);
    await http.get(`/api/agents/${id}/hierarchy`).set(as(stranger)).expect(404);
    await http.get(`/api/agents/${id}/status`).set(as(stranger)).expect(404);
    await http.post(`/api/agents/${id}/validate`).set(as(stranger)).expect(404);
    await http.post(`/api/agents/${id}/execute`).set(as(stranger)).send({ prompt: 'hi' }).expect(404);
    await http.post('/api/agents').set(as(stranger)).send({ serverId, name: 'intruder' }).expect(404);
    expect((await http.get('/api/agents').set(as(stranger)).expect(200)).body.items).toEqual([]);
  });
});
