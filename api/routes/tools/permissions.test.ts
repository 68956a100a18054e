import { randomUUID } from 'node:crypto';
import { AgentToolPermission, AuditLog, ServerToolStatus, type ToolDefinition } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { registerHost } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { builtinTool, catalogEntry, setServerTool } from '../../../test/tool-fixtures';
import { allowedToolsFor } from '../../../domain/tools/allowed-tools';

type Grant = { toolId: string; canUse: boolean; allowedCommands?: string[]; blockedCommands?: string[]; requiresApproval?: boolean };

describe('agent tool permissions', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let serverId: string;
  let git: ToolDefinition;
  let docker: ToolDefinition;
  let node: ToolDefinition;
  const hosts: AgentHost[] = [];
  const em = () => ctx.orm.em.fork();
  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  async function agent(body: Record<string, unknown> = {}, on = serverId): Promise<{ id: string; name: string }> {
    return (
      await http
        .post('/api/agents')
        .set(as(admin))
        .send({ serverId: on, name: `a-${randomUUID().slice(0, 8)}`, ...body })
        .expect(201)
    ).body;
  }
  const put = (agentId: string, permissions: Grant[], account = admin) =>
    http.put(`/api/tools/agent/${agentId}/permissions`).set(as(account)).send({ permissions });
  const get = (agentId: string, account = admin) => http.get(`/api/tools/agent/${agentId}/permissions`).set(as(account));
  /** tool name → [allowed, blocked] of what the agent holds with canUse. */
  async function held(agentId: string): Promise<Record<string, [string[], string[]]>> {
    const rows = await em().find(AgentToolPermission, { agent: agentId, canUse: true }, { populate: ['tool'] });
    return Object.fromEntries(rows.map((p) => [p.tool.name, [p.allowedCommands, p.blockedCommands]]));
  }

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Permissions Org');
    const registered = await registerHost(http, admin);
    hosts.push(registered.host);
    serverId = registered.serverId;
    [git, docker, node] = await Promise.all([builtinTool(em()), builtinTool(em()), builtinTool(em())]);
    for (const tool of [git, docker]) await setServerTool(em(), serverId, tool.id, ServerToolStatus.INSTALLED);
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(hosts.map((h) => h.close()));
    await ctx?.close();
  });

  it('replaces the whole set, audited with the difference; a grant waits for its tool’s install (pending_install)', async () => {
    const a = await agent();
    await put(a.id, [
      { toolId: git.id, canUse: true, blockedCommands: ['push', '  remote   add '] },
      { toolId: node.id, canUse: true },
    ]).expect(200);
    const first = await get(a.id).expect(200);
    expect(first.body).toMatchObject({ agentId: a.id, supervisorId: null, boundedBySupervisor: false });
    expect(first.body.permissions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          toolId: git.id,
          tool: expect.objectContaining({ name: git.name, builtin: true }),
          canUse: true,
          allowedCommands: [],
          blockedCommands: ['push', 'remote add'],
          state: 'active',
          grantedById: admin.userId,
        }),
        expect.objectContaining({ toolId: node.id, state: 'pending_install' }),
      ]),
    );

    const second = await put(a.id, [
      { toolId: git.id, canUse: true, blockedCommands: ['push', 'remote add'] },
      { toolId: docker.id, canUse: false },
    ]).expect(200);
    expect(second.body.permissions.map((p: { tool: { name: string }; state: string }) => [p.tool.name, p.state]).sort()).toEqual(
      [
        [docker.name, 'not_granted'],
        [git.name, 'active'],
      ].sort(),
    );
    expect(second.body.trimmed).toEqual([]);
    const audit = await em().find(AuditLog, { resourceId: a.id, action: 'agent.permissions.set' }, { orderBy: { createdAt: 'asc' } });
    expect(audit.map((row) => row.changes)).toEqual([
      {
        permissions: expect.arrayContaining([
          { tool: git.name, from: null, to: { canUse: true, allowedCommands: [], blockedCommands: ['push', 'remote add'] } },
          { tool: node.name, from: null, to: { canUse: true, allowedCommands: [], blockedCommands: [] } },
        ]),
      },
      {
        permissions: expect.arrayContaining([
          { tool: docker.name, from: null, to: { canUse: false, allowedCommands: [], blockedCommands: [] } },
          { tool: node.name, from: { canUse: true, allowedCommands: [], blockedCommands: [] }, to: null },
        ]),
      },
    ]);
    await put(a.id, []).expect(200);
    expect((await get(a.id).expect(200)).body.permissions).toEqual([]);
  });

  it('lets every member read, only ADMIN and MANAGER change; another organisation’s agent is 404', async () => {
    const a = await agent();
    const manager = await addMember(http, admin, 'MANAGER');
    await put(a.id, [{ toolId: git.id, canUse: true }], manager).expect(200);
    for (const role of ['OPERATOR', 'VIEWER']) {
      const member = await addMember(http, admin, role);
      expect((await get(a.id, member).expect(200)).body.permissions).toHaveLength(1);
      expect((await put(a.id, [], member).expect(403)).body.error.code).toBe('forbidden');
    }
    const other = await registerAccount(http, 'Other Permissions Org');
    await get(a.id, other).expect(404);
    await put(a.id, [], other).expect(404);
    expect(await held(a.id)).toEqual({ [git.name]: [[], []] });
  });

  it('refuses unknown or foreign tools and repeated entries with 400 naming the entry', async () => {
    const a = await agent();
    const other = await registerAccount(http, 'Foreign Tools Org');
    const foreign = (
      await http
        .post('/api/tools')
        .set(as(other))
        .send({ name: 'foreign-tool', category: 'x', installCommand: 'x', uninstallCommand: 'x', versionCommand: 'x' })
        .expect(201)
    ).body;
    for (const toolId of [randomUUID(), foreign.id]) {
      const res = await put(a.id, [
        { toolId: git.id, canUse: true },
        { toolId, canUse: true },
      ]).expect(400);
      expect(res.body.error.details).toEqual([
        { path: 'body.permissions.1.toolId', message: 'no such tool in your catalog', code: 'not_found' },
      ]);
    }
    const repeated = await put(a.id, [
      { toolId: git.id, canUse: true },
      { toolId: git.id, canUse: false },
    ]).expect(400);
    expect(repeated.body.error.details[0].path).toBe('body.permissions.1.toolId');
    expect((await put(a.id, [{ toolId: git.id, canUse: true, allowedCommands: [' '] }]).expect(400)).body.error.details[0].path).toBe(
      'body.permissions.0.allowedCommands.0',
    );
    expect(await held(a.id)).toEqual({});
  });

  it('never grants a catalog entry named like a host contract tool (written before the names were reserved): 400 platform_tool; canUse false is no grant', async () => {
    const a = await agent();
    const commands = { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'true' };
    const reserved = await catalogEntry(ctx.orm, admin.organizationId, commands, { name: 'check_tool' });
    const lookalike = await catalogEntry(ctx.orm, admin.organizationId, commands, { name: 'Install_Tool' });
    for (const tool of [reserved, lookalike]) {
      const res = await put(a.id, [
        { toolId: git.id, canUse: true },
        { toolId: tool.id, canUse: true },
      ]).expect(400);
      expect(res.body.error.details).toEqual([
        {
          path: 'body.permissions.1.toolId',
          message: expect.stringContaining(`${tool.name} is a tool of the host contract`),
          code: 'platform_tool',
        },
      ]);
    }
    expect(await held(a.id)).toEqual({});
    await put(a.id, [{ toolId: reserved.id, canUse: false }]).expect(200);
    expect(await held(a.id)).toEqual({});
  });

  it('never lets a subordinate hold a tool or a command its supervisor lacks (400 naming it); a MASTER is bounded only by its server', async () => {
    const master = await agent({ role: 'MASTER' });
    const lead = await agent({ role: 'SUPERVISOR', supervisorId: master.id });
    const worker = await agent({ supervisorId: lead.id });
    // The MASTER takes anything, installed or not.
    await put(master.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
      { toolId: node.id, canUse: true },
    ]).expect(200);
    await put(lead.id, [
      { toolId: git.id, canUse: true, allowedCommands: ['status', 'log', 'remote'], blockedCommands: ['remote add'] },
    ]).expect(200);

    const missingTool = await put(worker.id, [
      { toolId: git.id, canUse: true, allowedCommands: ['status'], blockedCommands: ['remote add'] },
      { toolId: docker.id, canUse: true },
    ]).expect(400);
    expect(missingTool.body.error.details).toEqual([
      {
        path: 'body.permissions.1.toolId',
        message: expect.stringContaining(`does not hold the tool ${docker.name}`),
        code: 'not_held_by_supervisor',
      },
    ]);
    const everyCommand = await put(worker.id, [{ toolId: git.id, canUse: true }]).expect(400);
    expect(everyCommand.body.error.details[0]).toMatchObject({ path: 'body.permissions.0.allowedCommands', code: 'beyond_supervisor' });
    const outside = await put(worker.id, [{ toolId: git.id, canUse: true, allowedCommands: ['status', 'commit'] }]).expect(400);
    expect(outside.body.error.details[0]).toMatchObject({
      path: 'body.permissions.0.allowedCommands',
      message: expect.stringContaining(`"${git.name} commit"`),
    });
    const unblocked = await put(worker.id, [{ toolId: git.id, canUse: true, allowedCommands: ['remote'] }]).expect(400);
    expect(unblocked.body.error.details[0]).toMatchObject({
      path: 'body.permissions.0.blockedCommands',
      message: expect.stringContaining(`"${git.name} remote add" is blocked for the supervisor`),
    });
    expect(await held(worker.id)).toEqual({});

    // Within the supervisor's: accepted. A denied entry (canUse false) is no grant and needs nothing above it.
    await put(worker.id, [
      { toolId: git.id, canUse: true, allowedCommands: ['status', 'remote'], blockedCommands: ['remote add'] },
      { toolId: docker.id, canUse: false },
    ]).expect(200);
    expect((await get(worker.id).expect(200)).body).toMatchObject({ supervisorId: lead.id, boundedBySupervisor: true });
  });

  it('takes from the whole subtree, in the same change and audited, what a supervisor loses', async () => {
    const lead = await agent({ role: 'SUPERVISOR' });
    const mid = await agent({ supervisorId: lead.id });
    const leaf = await agent({ supervisorId: mid.id });
    await put(lead.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
    await put(mid.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true, blockedCommands: ['rm'] },
    ]).expect(200);
    await put(leaf.id, [
      { toolId: git.id, canUse: true, allowedCommands: ['status'] },
      { toolId: docker.id, canUse: true, blockedCommands: ['rm'] },
    ]).expect(200);

    const narrowed = await put(lead.id, [
      { toolId: git.id, canUse: true, allowedCommands: ['status', 'log'], blockedCommands: ['log -p'] },
    ]).expect(200);
    expect(narrowed.body.trimmed).toEqual([
      {
        agentId: mid.id,
        name: mid.name,
        removed: [docker.name],
        narrowed: [
          {
            tool: git.name,
            from: { allowedCommands: [], blockedCommands: [] },
            to: { allowedCommands: ['status', 'log'], blockedCommands: ['log -p'] },
          },
        ],
        approvalRequired: [],
      },
      {
        agentId: leaf.id,
        name: leaf.name,
        removed: [docker.name],
        narrowed: [
          {
            tool: git.name,
            from: { allowedCommands: ['status'], blockedCommands: [] },
            to: { allowedCommands: ['status'], blockedCommands: ['log -p'] },
          },
        ],
        approvalRequired: [],
      },
    ]);
    expect(await held(mid.id)).toEqual({ [git.name]: [['status', 'log'], ['log -p']] });
    expect(await held(leaf.id)).toEqual({ [git.name]: [['status'], ['log -p']] });

    await put(lead.id, [{ toolId: git.id, canUse: true, allowedCommands: ['log'] }]).expect(200);
    expect(await held(mid.id)).toEqual({ [git.name]: [['log'], ['log -p']] });
    // Nothing of the leaf's `status` is left under `log`: it loses the tool.
    expect(await held(leaf.id)).toEqual({});
    const trims = await em().find(
      AuditLog,
      { resourceId: leaf.id, action: 'agent.permissions.trimmed' },
      { orderBy: { createdAt: 'asc' } },
    );
    expect(trims.map((row) => row.changes)).toEqual([
      expect.objectContaining({
        cause: 'supervisor_permissions_changed',
        supervisorId: mid.id,
        changedAgentId: lead.id,
        removed: [docker.name],
      }),
      expect.objectContaining({ cause: 'supervisor_permissions_changed', supervisorId: mid.id, removed: [git.name], narrowed: [] }),
    ]);
  });

  it('requiresApproval: set per grant, returned, audited, sent to the host in allowedTools, and kept by every subordinate', async () => {
    const lead = await agent({ role: 'SUPERVISOR' });
    const sub = await agent({ supervisorId: lead.id });
    await put(lead.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
    await put(sub.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
    const permissionsOf = async (agentId: string) =>
      Object.fromEntries(
        (await get(agentId).expect(200)).body.permissions.map((p: { tool: { name: string }; requiresApproval: boolean }) => [
          p.tool.name,
          p.requiresApproval,
        ]),
      );
    expect(await permissionsOf(lead.id)).toEqual({ [git.name]: false, [docker.name]: false });

    // The supervisor's git now asks first: its subordinate's does too, in the same change.
    const gated = await put(lead.id, [
      { toolId: git.id, canUse: true, requiresApproval: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
    expect(gated.body.permissions.find((p: { toolId: string }) => p.toolId === git.id).requiresApproval).toBe(true);
    expect(gated.body.trimmed).toEqual([{ agentId: sub.id, name: sub.name, removed: [], narrowed: [], approvalRequired: [git.name] }]);
    expect(await permissionsOf(sub.id)).toEqual({ [git.name]: true, [docker.name]: false });
    const [set] = await em().find(
      AuditLog,
      { resourceId: lead.id, action: 'agent.permissions.set' },
      { orderBy: { createdAt: 'desc' }, limit: 1 },
    );
    expect(set!.changes).toEqual({
      permissions: [
        {
          tool: git.name,
          from: { canUse: true, allowedCommands: [], blockedCommands: [] },
          to: { canUse: true, allowedCommands: [], blockedCommands: [], requiresApproval: true },
        },
      ],
    });
    const [trim] = await em().find(AuditLog, { resourceId: sub.id, action: 'agent.permissions.trimmed' });
    expect(trim!.changes).toMatchObject({ cause: 'supervisor_permissions_changed', approvalRequired: [git.name] });

    // A subordinate cannot drop the gate its supervisor has.
    const around = await put(sub.id, [{ toolId: git.id, canUse: true, requiresApproval: false }]).expect(400);
    expect(around.body.error.details).toEqual([
      {
        path: 'body.permissions.0.requiresApproval',
        message: expect.stringContaining('asks for approval before each command'),
        code: 'beyond_supervisor',
      },
    ]);
    expect((await put(sub.id, [{ toolId: git.id, canUse: 'yes' } as never]).expect(400)).body.error.details[0].path).toBe(
      'body.permissions.0.canUse',
    );
    expect(
      (
        await http
          .put(`/api/tools/agent/${sub.id}/permissions`)
          .set(as(admin))
          .send({ permissions: [{ toolId: git.id, canUse: true, requiresApproval: 'sometimes' }] })
          .expect(400)
      ).body.error.details[0].path,
    ).toBe('body.permissions.0.requiresApproval');

    // What the host receives: the gate on git only.
    expect(await allowedToolsFor(em(), sub.id)).toEqual(
      [
        { name: git.name, allowedCommands: [], blockedCommands: [], requiresApproval: true },
        { name: docker.name, allowedCommands: [], blockedCommands: [] },
      ].sort((a, b) => a.name.localeCompare(b.name)),
    );
  });

  it('keeps the rule when a grant below and a loss above race (one lock per server tree)', async () => {
    const lead = await agent({ role: 'SUPERVISOR' });
    const sub = await agent({ supervisorId: lead.id });
    for (let round = 0; round < 8; round++) {
      await put(lead.id, [
        { toolId: git.id, canUse: true },
        { toolId: docker.id, canUse: true },
      ]).expect(200);
      await put(sub.id, []).expect(200);
      const [above, below] = await Promise.all([
        put(lead.id, [{ toolId: git.id, canUse: true }]),
        put(sub.id, [{ toolId: docker.id, canUse: true }]),
      ]);
      expect(above.status).toBe(200);
      expect([200, 400]).toContain(below.status);
      expect(await held(sub.id)).toEqual({});
    }
  });

  it('trims an agent moved under another supervisor, and its subtree, to what the new supervisor holds', async () => {
    const wide = await agent({ role: 'SUPERVISOR' });
    const narrow = await agent({ role: 'SUPERVISOR' });
    const moved = await agent({ supervisorId: wide.id });
    const below = await agent({ supervisorId: moved.id });
    await put(wide.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
    await put(narrow.id, [{ toolId: git.id, canUse: true, blockedCommands: ['push'] }]).expect(200);
    await put(moved.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
    await put(below.id, [{ toolId: docker.id, canUse: true }]).expect(200);

    await http.put(`/api/agents/${moved.id}`).set(as(admin)).send({ supervisorId: narrow.id }).expect(200);
    expect(await held(moved.id)).toEqual({ [git.name]: [[], ['push']] });
    expect(await held(below.id)).toEqual({});
    const audit = await em().find(AuditLog, { resourceId: { $in: [moved.id, below.id] }, action: 'agent.permissions.trimmed' });
    expect(audit.map((row) => [row.resourceId, row.changes])).toEqual(
      expect.arrayContaining([
        [moved.id, expect.objectContaining({ cause: 'moved', supervisorId: narrow.id, removed: [docker.name] })],
        [below.id, expect.objectContaining({ cause: 'moved', supervisorId: moved.id, removed: [docker.name] })],
      ]),
    );
    // No supervisor any more: nothing to trim, and now it may hold what it likes again.
    await http.put(`/api/agents/${moved.id}`).set(as(admin)).send({ supervisorId: null }).expect(200);
    await put(moved.id, [
      { toolId: git.id, canUse: true },
      { toolId: docker.id, canUse: true },
    ]).expect(200);
  });

  it('keeps grants when their tool leaves a server (pending again), and each server’s grants follow that server only', async () => {
    const other = await registerHost(http, admin);
    hosts.push(other.host);
    await setServerTool(em(), other.serverId, git.id, ServerToolStatus.INSTALLED);
    const here = await agent();
    const there = await agent({}, other.serverId);
    await put(here.id, [{ toolId: git.id, canUse: true }]).expect(200);
    await put(there.id, [{ toolId: git.id, canUse: true }]).expect(200);
    await setServerTool(em(), other.serverId, git.id, ServerToolStatus.NOT_INSTALLED);
    expect((await get(there.id).expect(200)).body.permissions[0].state).toBe('pending_install');
    expect((await get(here.id).expect(200)).body.permissions[0].state).toBe('active');
    await setServerTool(em(), other.serverId, git.id, ServerToolStatus.INSTALLED);
    expect((await get(there.id).expect(200)).body.permissions[0].state).toBe('active');
  });
});
