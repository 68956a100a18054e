import { randomUUID } from 'node:crypto';
import { AuditLog, ServerTool, ServerToolStatus, ToolDefinition } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { registerHost } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { builtinTool, setServerTool } from '../../../test/tool-fixtures';

describe('the tool catalog', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let manager: Account;
  let other: Account;
  let builtin: ToolDefinition;
  const hosts: AgentHost[] = [];
  const em = () => ctx.orm.em.fork();
  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });
  const entry = (body: Record<string, unknown> = {}) => ({
    name: `tool-${randomUUID().slice(0, 8)}`,
    category: 'custom',
    installCommand: 'echo install',
    uninstallCommand: 'echo uninstall',
    versionCommand: 'echo 1.0.0',
    ...body,
  });
  const create = (body: Record<string, unknown> = {}, account = admin) => http.post('/api/tools').set(as(account)).send(entry(body));

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Catalog Org');
    manager = await addMember(http, admin, 'MANAGER');
    other = await registerAccount(http, 'Other Catalog Org');
    builtin = await builtinTool(em(), { category: 'vcs', description: 'a built-in for the catalog tests' });
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(hosts.map((h) => h.close()));
    await ctx?.close();
  });

  it('shows every role the built-in entries and its own organisation’s, never another’s', async () => {
    const own = (await create({ category: 'catalog-read', description: 'Deploys the thing' }).expect(201)).body;
    const foreign = (await create({ category: 'catalog-read' }, other).expect(201)).body;
    for (const role of ['ADMIN', 'MANAGER', 'OPERATOR', 'VIEWER']) {
      const member = role === 'ADMIN' ? admin : await addMember(http, admin, role);
      const mine = await http.get('/api/tools').query({ category: 'catalog-read' }).set(as(member)).expect(200);
      expect(mine.body.items.map((t: { id: string }) => t.id)).toEqual([own.id]);
      const withBuiltin = await http.get('/api/tools').query({ q: builtin.name, limit: 100 }).set(as(member)).expect(200);
      expect(withBuiltin.body.items).toEqual([expect.objectContaining({ id: builtin.id, builtin: true, organizationId: null })]);
      await http.get(`/api/tools/${builtin.id}`).set(as(member)).expect(200);
      await http.get(`/api/tools/${own.id}`).set(as(member)).expect(200);
      await http.get(`/api/tools/${foreign.id}`).set(as(member)).expect(404);
    }
    expect(own).toMatchObject({
      builtin: false,
      organizationId: admin.organizationId,
      displayName: own.name,
      versionRegex: null,
      homepage: null,
    });
  });

  it('filters by category and text (name, display name, description), page by page', async () => {
    const category = `cat-${randomUUID().slice(0, 6)}`;
    const a = (await create({ category, displayName: 'Alpha Deployer' }).expect(201)).body;
    const b = (await create({ category, description: 'talks to the DEPLOY api' }).expect(201)).body;
    await create({ category }).expect(201);
    const found = await http.get('/api/tools').query({ category, q: 'deploy' }).set(as(admin)).expect(200);
    expect(found.body.items.map((t: { id: string }) => t.id).sort()).toEqual([a.id, b.id].sort());
    const first = await http.get('/api/tools').query({ category, limit: 2 }).set(as(admin)).expect(200);
    expect(first.body.items).toHaveLength(2);
    const second = await http.get('/api/tools').query({ category, limit: 2, cursor: first.body.nextCursor }).set(as(admin)).expect(200);
    expect(second.body).toMatchObject({ items: [expect.anything()], nextCursor: null });
    expect((await http.get('/api/tools').query({ category: 'Not A Category' }).set(as(admin)).expect(400)).body.error.details[0].path).toBe(
      'query.category',
    );
  });

  it("lets only ADMIN add, change and remove their own entries (their commands run as the hosts' user), audited with the commands; MANAGER, OPERATOR and VIEWER may not", async () => {
    const created = (await create({ versionRegex: 'v(\\d+\\.\\d+)', homepage: 'https://example.test/tool' }).expect(201)).body;
    const updated = await http
      .put(`/api/tools/${created.id}`)
      .set(as(admin))
      .send({ installCommand: 'echo install v2', description: 'now described', homepage: null })
      .expect(200);
    expect(updated.body).toMatchObject({
      installCommand: 'echo install v2',
      description: 'now described',
      homepage: null,
      versionRegex: 'v(\\d+\\.\\d+)',
    });
    for (const member of [manager, await addMember(http, admin, 'OPERATOR'), await addMember(http, admin, 'VIEWER')]) {
      expect((await create({ installCommand: 'id > /tmp/mcp-fleet-whoami' }, member).expect(403)).body.error.code).toBe('forbidden');
      expect(
        (await http.put(`/api/tools/${created.id}`).set(as(member)).send({ installCommand: 'id > /tmp/mcp-fleet-whoami' }).expect(403)).body
          .error.code,
      ).toBe('forbidden');
      await http.put(`/api/tools/${created.id}`).set(as(member)).send({ description: 'x' }).expect(403);
      await http.delete(`/api/tools/${created.id}`).set(as(member)).expect(403);
    }
    // A MANAGER still reads the catalog, and installs and grants what an ADMIN wrote (server-tools.test.ts, permissions.test.ts).
    await http.get(`/api/tools/${created.id}`).set(as(manager)).expect(200);
    await http.delete(`/api/tools/${created.id}`).set(as(admin)).expect(204);
    await http.get(`/api/tools/${created.id}`).set(as(admin)).expect(404);
    const audit = await em().find(AuditLog, { resourceId: created.id }, { orderBy: { createdAt: 'asc' } });
    expect(audit.map((a) => a.action)).toEqual(['tool.create', 'tool.update', 'tool.delete']);
    expect(audit.every((a) => a.actor?.id === admin.userId)).toBe(true);
    const commands = { uninstallCommand: 'echo uninstall', versionCommand: 'echo 1.0.0', versionRegex: 'v(\\d+\\.\\d+)' };
    expect(audit[0]!.changes).toEqual({ name: created.name, category: 'custom', installCommand: 'echo install', ...commands });
    expect(audit[2]!.changes).toEqual({ name: created.name, installCommand: 'echo install v2', ...commands });
    expect(audit[1]!.changes).toEqual({
      installCommand: { from: 'echo install', to: 'echo install v2' },
      description: { from: null, to: 'now described' },
      homepage: { from: 'https://example.test/tool', to: null },
    });
  });

  it('refuses the name of a host contract tool, in any letter case, with 400 platform_tool on body.name', async () => {
    for (const name of ['check_tool', 'install_tool', 'execute_prompt', 'CHECK_TOOL', 'Uninstall_Tool']) {
      const refused = await create({ name }).expect(400);
      expect(refused.body.error.details).toEqual([
        expect.objectContaining({
          path: 'body.name',
          code: 'platform_tool',
          message: expect.stringContaining(`${name} is a tool of the host contract`),
        }),
      ]);
    }
    const created = (await create({}).expect(201)).body;
    const renamed = await http.put(`/api/tools/${created.id}`).set(as(admin)).send({ name: 'check_tool' }).expect(400);
    expect(renamed.body.error.details).toEqual([expect.objectContaining({ path: 'body.name', code: 'platform_tool' })]);
    expect(await em().count(ToolDefinition, { organization: admin.organizationId, name: { $ilike: '%_tool' } })).toBe(0);
  });

  it('keeps built-in entries read-only for everyone, ADMIN included (403 builtin_read_only)', async () => {
    for (const account of [admin, manager]) {
      const put = await http.put(`/api/tools/${builtin.id}`).set(as(account)).send({ description: 'mine now' }).expect(403);
      expect(put.body.error.code).toBe('builtin_read_only');
      expect((await http.delete(`/api/tools/${builtin.id}`).set(as(account)).expect(403)).body.error.code).toBe('builtin_read_only');
    }
    expect((await em().findOneOrFail(ToolDefinition, builtin.id)).description).toBe('a built-in for the catalog tests');
  });

  it('answers 404 for another organisation’s entry on every route', async () => {
    const foreign = (await create({}, other).expect(201)).body;
    await http.get(`/api/tools/${foreign.id}`).set(as(admin)).expect(404);
    await http.put(`/api/tools/${foreign.id}`).set(as(admin)).send({ description: 'x' }).expect(404);
    await http.delete(`/api/tools/${foreign.id}`).set(as(admin)).expect(404);
    await http.get(`/api/tools/${foreign.id}`).set(as(other)).expect(200);
  });

  it('refuses bad entries with 400 naming the field, and names taken in the organisation or by a built-in with 409', async () => {
    const regex = await create({ versionRegex: 'version (\\d+' }).expect(400);
    expect(regex.body.error.details).toEqual([
      expect.objectContaining({ path: 'body.versionRegex', message: expect.stringContaining('not a valid regular expression') }),
    ]);
    const created = (await create({}).expect(201)).body;
    const badUpdate = await http.put(`/api/tools/${created.id}`).set(as(admin)).send({ versionRegex: '[' }).expect(400);
    expect(badUpdate.body.error.details[0].path).toBe('body.versionRegex');
    expect((await create({ name: 'Has Spaces' }).expect(400)).body.error.details[0].path).toBe('body.name');
    expect((await create({ installCommand: '   ' }).expect(400)).body.error.details[0].path).toBe('body.installCommand');
    expect((await create({ homepage: 'javascript:alert(1)' }).expect(400)).body.error.details[0].path).toBe('body.homepage');
    expect((await http.put(`/api/tools/${created.id}`).set(as(admin)).send({}).expect(400)).body.error.code).toBe('validation_failed');
    expect((await create({ name: created.name }).expect(409)).body.error.code).toBe('name_taken');
    expect((await create({ name: builtin.name }).expect(409)).body.error.code).toBe('name_taken');
    const second = (await create({}).expect(201)).body;
    expect((await http.put(`/api/tools/${second.id}`).set(as(admin)).send({ name: created.name }).expect(409)).body.error.code).toBe(
      'name_taken',
    );
    // Another organisation may use the same name.
    await create({ name: created.name }, other).expect(201);
  });

  it('refuses to delete an entry that is on a server or granted (409 tool_in_use, naming them); its leftover server rows go with it', async () => {
    const { host, serverId } = await registerHost(http, admin);
    hosts.push(host);
    const tool = (await create({}).expect(201)).body;
    const agent = (
      await http
        .post('/api/agents')
        .set(as(admin))
        .send({ serverId, name: `a-${randomUUID().slice(0, 8)}` })
        .expect(201)
    ).body;
    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(as(admin))
      .send({ permissions: [{ toolId: tool.id, canUse: true }] })
      .expect(200);
    await setServerTool(em(), serverId, tool.id, ServerToolStatus.INSTALLED);

    const refused = await http.delete(`/api/tools/${tool.id}`).set(as(admin)).expect(409);
    expect(refused.body.error).toMatchObject({
      code: 'tool_in_use',
      message: expect.stringMatching(/on 1 server.*granted to 1 agent/),
      details: {
        servers: [{ serverId, name: expect.any(String), status: 'INSTALLED' }],
        agents: [{ agentId: agent.id, name: agent.name }],
      },
    });

    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(as(admin))
      .send({ permissions: [{ toolId: tool.id, canUse: false }] })
      .expect(200);
    expect((await http.delete(`/api/tools/${tool.id}`).set(as(admin)).expect(409)).body.error.details.agents).toEqual([]);
    await setServerTool(em(), serverId, tool.id, ServerToolStatus.FAILED);
    await http.delete(`/api/tools/${tool.id}`).set(as(admin)).expect(204);
    expect(await em().count(ServerTool, { tool: tool.id })).toBe(0);
  });
});
