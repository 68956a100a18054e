import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { AuditLog } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { parseSse, registerHost, sseText } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { startMcpServer, type StreamableTestMcpServer } from '../../../test/mcp-servers';
import {
  catalogEntry,
  gatedVersionFileTool,
  removeToolDirs,
  toolState,
  versionFileTool,
  waitForToolState,
} from '../../../test/tool-fixtures';
import { SERVER_HEALTH_WORKFLOW, type ServerHealthWorkflow } from '../../../workflows/contracts/server-check';

describe('tool installs on servers (/api/tools/server)', () => {
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let http: Http;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  const closers: (() => Promise<void>)[] = [];

  const bearer = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });
  const install = (body: Record<string, unknown>, account = admin, server = serverId) =>
    http.post(`/api/tools/server/${server}/install`).set(bearer(account)).send(body);
  const uninstall = (toolId: string, account = admin, server = serverId) =>
    http.delete(`/api/tools/server/${server}/${toolId}`).set(bearer(account));
  const audits = (action: string) =>
    ctx.orm.em.fork().find(AuditLog, { organization: admin.organizationId, action }, { orderBy: { createdAt: 'asc' } });

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Tools Org');
    ({ host, serverId } = await registerHost(http, admin, { allowCommands: true }));
  }, 60_000);
  afterAll(async () => {
    for (const close of closers) await close();
    await host?.close();
    removeToolDirs();
    await worker?.stop();
    await ctx?.close();
  });

  it('installs a catalog tool: INSTALLING, then INSTALLED with the version check_tool verified, audited', async () => {
    const spec = versionFileTool('1.2.3');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, spec);
    const res = await install({ toolId: tool.id }).expect(202);
    expect(res.body).toEqual({ workflowId: `tool-${serverId}-${tool.id}`, serverId, toolId: tool.id, action: 'install' });

    const state = await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED', 'FAILED']);
    expect(state).toMatchObject({
      status: 'INSTALLED',
      installedVersion: '1.2.3',
      lastError: null,
      workflowId: res.body.workflowId,
      tool: { id: tool.id, name: tool.name },
    });
    expect(state.installedAt).not.toBeNull();
    expect(state.checkedAt).not.toBeNull();
    expect(state.logTail).toContain(`$ ${spec.versionCommand}`);
    expect(existsSync(spec.file)).toBe(true);
    const calls = host.calls.filter((c) => c.args.name === tool.name);
    // Asked first (not there yet), installed, verified.
    expect(calls.map((c) => c.tool)).toEqual(['check_tool', 'install_tool', 'check_tool']);
    expect(calls[2]!.args).toMatchObject({ versionCommand: spec.versionCommand, versionRegex: spec.versionRegex });

    expect((await audits('server.tool_install')).map((a) => a.changes)).toContainEqual(
      expect.objectContaining({ toolId: tool.id, workflowId: res.body.workflowId }),
    );
    expect((await audits('server.tool_installed')).map((a) => a.changes)).toContainEqual(
      expect.objectContaining({ toolId: tool.id, status: 'INSTALLED', version: '1.2.3' }),
    );
  });

  it('streams the states with Accept: text/event-stream until the install settles', async () => {
    const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('3.1.4'));
    const res = await install({ name: tool.name }).set('Accept', 'text/event-stream').buffer(true).parse(sseText).expect(200);
    expect(res.headers['content-type']).toMatch(/text\/event-stream/);
    const events = parseSse(res.body as string);
    expect(events[0]).toMatchObject({ event: 'started', data: { action: 'install', toolId: tool.id } });
    const statuses = events.filter((e) => e.event === 'status').map((e) => e.data.status);
    expect(statuses).toEqual(['NOT_INSTALLED', 'INSTALLING', 'INSTALLED']);
    expect(events.at(-1)!.data).toMatchObject({
      serverId,
      toolId: tool.id,
      toolName: tool.name,
      status: 'INSTALLED',
      previousStatus: 'INSTALLING',
      version: '3.1.4',
    });
  });

  it('follows a running change on GET with Accept: text/event-stream, and sends the state alone when nothing runs', async () => {
    const spec = gatedVersionFileTool('1.4.0');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, spec);
    await install({ toolId: tool.id }).expect(202);
    await host.waitForCall('install_tool', (c) => c.args.name === tool.name, 15_000);
    // INSTALLING is written while the host call goes out: the call can arrive first.
    await waitForToolState(http, admin, serverId, tool.id, ['INSTALLING'], 15_000);
    // The install ends once the stream has shown it running.
    const followed = await http
      .get(`/api/tools/server/${serverId}/${tool.id}`)
      .set(bearer(admin))
      .set('Accept', 'text/event-stream')
      .buffer(true)
      .parse((res, done) => {
        let text = '';
        (res as unknown as NodeJS.ReadableStream).on('data', (chunk: Buffer) => {
          text += chunk.toString();
          if (text.includes('"INSTALLING"')) spec.openGate();
        });
        (res as unknown as NodeJS.ReadableStream).on('end', () => done(null, text));
      })
      .expect(200);
    expect(parseSse(followed.body as string).map((e) => [e.event, e.data.status])).toEqual([
      ['status', 'INSTALLING'],
      ['status', 'INSTALLED'],
    ]);
    const idle = await http
      .get(`/api/tools/server/${serverId}/${tool.id}`)
      .set(bearer(admin))
      .set('Accept', 'text/event-stream')
      .buffer(true)
      .parse(sseText)
      .expect(200);
    expect(parseSse(idle.body as string)).toEqual([
      expect.objectContaining({ event: 'status', data: expect.objectContaining({ status: 'INSTALLED', version: '1.4.0' }) }),
    ]);
  });

  it('installs the version asked for through the {version} placeholder, and refuses one the entry cannot take', async () => {
    const spec = versionFileTool();
    const tool = await catalogEntry(ctx.orm, admin.organizationId, {
      ...spec,
      installCommand: `echo "probe version {version}" > ${spec.file}`,
    });
    await install({ toolId: tool.id, version: '2.5.1' }).expect(202);
    expect(await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED', 'FAILED'])).toMatchObject({
      status: 'INSTALLED',
      installedVersion: '2.5.1',
    });

    const fixed = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool());
    const refused = await install({ toolId: fixed.id, version: '2.5.1' }).expect(400);
    expect(refused.body.error.details).toEqual([expect.objectContaining({ path: 'body.version', code: 'version_not_supported' })]);
    const hostile = await install({ toolId: tool.id, version: '1; rm -rf /' }).expect(400);
    expect(hostile.body.error.details[0].path).toBe('body.version');
  });

  it('records a failing install as FAILED with the host log and a reason a person understands', async () => {
    const failing = await catalogEntry(ctx.orm, admin.organizationId, {
      ...versionFileTool(),
      installCommand: 'echo "E: Unable to locate package probe-nothing" >&2; exit 100',
    });
    await install({ toolId: failing.id }).expect(202);
    const state = await waitForToolState(http, admin, serverId, failing.id, ['INSTALLED', 'FAILED']);
    expect(state.status).toBe('FAILED');
    expect(state.lastError).toBe('the install command failed with exit code 100: E: Unable to locate package probe-nothing');
    expect(state.logTail).toContain('Unable to locate package probe-nothing');
    expect((await audits('server.tool_install_failed')).map((a) => a.changes)).toContainEqual(
      expect.objectContaining({ toolId: failing.id, status: 'FAILED' }),
    );

    // A package manager missing on the server.
    const noManager = await catalogEntry(ctx.orm, admin.organizationId, {
      ...versionFileTool(),
      installCommand: 'PATH=/nonexistent apt-get install -y probe',
    });
    await install({ toolId: noManager.id }).expect(202);
    const missing = await waitForToolState(http, admin, serverId, noManager.id, ['INSTALLED', 'FAILED']);
    expect(missing).toMatchObject({
      status: 'FAILED',
      lastError: 'the install command needs apt-get, which is not installed on the server (exit code 127)',
    });

    // The command succeeds but the version command does not find the tool.
    const unverified = await catalogEntry(ctx.orm, admin.organizationId, { ...versionFileTool(), installCommand: 'true' });
    await install({ toolId: unverified.id }).expect(202);
    const absent = await waitForToolState(http, admin, serverId, unverified.id, ['INSTALLED', 'FAILED']);
    expect(absent.status).toBe('FAILED');
    expect(absent.lastError).toMatch(/^the install command succeeded, but probe-\w+ is not found afterwards/);
  });

  it('uninstalls: REMOVING, then NOT_INSTALLED once check_tool finds it gone; nothing to remove is a 409', async () => {
    const spec = versionFileTool('0.9.0');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, spec);
    expect((await uninstall(tool.id).expect(409)).body.error.code).toBe('not_installed');
    await install({ toolId: tool.id }).expect(202);
    await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED']);

    const res = await uninstall(tool.id).set('Accept', 'text/event-stream').buffer(true).parse(sseText).expect(200);
    const statuses = parseSse(res.body as string)
      .filter((e) => e.event === 'status')
      .map((e) => e.data.status);
    expect(statuses).toEqual(['INSTALLED', 'REMOVING', 'NOT_INSTALLED']);
    expect(await toolState(http, admin, serverId, tool.id)).toMatchObject({
      status: 'NOT_INSTALLED',
      installedVersion: null,
      installedAt: null,
      lastError: null,
    });
    expect(existsSync(spec.file)).toBe(false);
    expect(host.calls.filter((c) => c.args.name === tool.name).map((c) => c.tool)).toEqual([
      'check_tool',
      'install_tool',
      'check_tool',
      'uninstall_tool',
      'check_tool',
    ]);
    expect(await audits('server.tool_uninstall')).toHaveLength(1);
    expect(await audits('server.tool_uninstalled')).toHaveLength(1);
  });

  it('ends FAILED with what the server has when the check disagrees: another version installed, or a tool still there after its uninstall', async () => {
    const spec = versionFileTool('9.9.9');
    const pinned = await catalogEntry(ctx.orm, admin.organizationId, {
      ...spec,
      installCommand: `${spec.installCommand} # {version}`,
      uninstallCommand: 'true',
    });
    await install({ toolId: pinned.id, version: '1.0' }).expect(202);
    const wrong = await waitForToolState(http, admin, serverId, pinned.id, ['INSTALLED', 'FAILED']);
    expect(wrong).toMatchObject({ status: 'FAILED', lastError: `${pinned.name} 9.9.9 is installed, not the version 1.0 asked for` });

    await install({ toolId: pinned.id, version: '9.9' }).expect(202);
    expect(await waitForToolState(http, admin, serverId, pinned.id, ['INSTALLED'])).toMatchObject({ installedVersion: '9.9.9' });
    await uninstall(pinned.id).expect(202);
    const kept = await waitForToolState(http, admin, serverId, pinned.id, ['NOT_INSTALLED', 'FAILED']);
    expect(kept).toMatchObject({
      status: 'FAILED',
      lastError: `the uninstall command succeeded, but ${pinned.name} 9.9.9 is still there`,
      installedVersion: '9.9.9',
    });
  });

  it('records a tool that is already there INSTALLED without running its install command, even one mcp-fleet never installed', async () => {
    // git is on the machine the reference host runs on; this entry's install command would leave a marker.
    const marker = path.join(versionFileTool().dir, 'install-ran');
    const git = await catalogEntry(ctx.orm, admin.organizationId, {
      installCommand: `touch ${marker}`,
      uninstallCommand: 'true',
      versionCommand: 'git --version',
      versionRegex: String.raw`git version (\S+)`,
    });
    const res = await install({ toolId: git.id }).set('Accept', 'text/event-stream').buffer(true).parse(sseText).expect(200);
    const statuses = parseSse(res.body as string).filter((e) => e.event === 'status');
    expect(statuses.map((e) => e.data.status)).toEqual(['NOT_INSTALLED', 'INSTALLING', 'INSTALLED']);
    const gitVersion = statuses.at(-1)!.data.version as string;
    expect(gitVersion).toMatch(/^\d+\.\d+/);
    expect(statuses.at(-1)!.data).toMatchObject({ status: 'INSTALLED', alreadyInstalled: true });

    const state = await toolState(http, admin, serverId, git.id);
    expect(state).toMatchObject({ status: 'INSTALLED', installedVersion: gitVersion, lastError: null });
    expect(state.checkedAt).not.toBeNull();
    expect(state.logTail).toContain(`[${git.name} ${gitVersion} is already installed: the install command was not run]`);
    expect(host.calls.filter((c) => c.args.name === git.name).map((c) => c.tool)).toEqual(['check_tool']);
    expect(existsSync(marker)).toBe(false);
    expect((await audits('server.tool_installed')).map((a) => a.changes).filter((c) => c?.toolId === git.id)).toEqual([
      expect.objectContaining({ status: 'INSTALLED', version: gitVersion, alreadyInstalled: true }),
    ]);
  });

  it('installs when the version there does not satisfy the one asked for, and not when it does', async () => {
    const spec = versionFileTool();
    const marker = path.join(spec.dir, 'install-ran');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, {
      ...spec,
      installCommand: `echo run >> ${marker} && echo "probe version {version}" > ${spec.file}`,
    });
    writeFileSync(spec.file, 'probe version 1.4.2\n');

    // 1.4 is satisfied by 1.4.2: nothing runs.
    await install({ toolId: tool.id, version: '1.4' }).expect(202);
    expect(await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED', 'FAILED'])).toMatchObject({
      status: 'INSTALLED',
      installedVersion: '1.4.2',
    });
    expect(existsSync(marker)).toBe(false);

    // 2.0.0 is not: the install runs once and the check after it finds 2.0.0.
    await install({ toolId: tool.id, version: '2.0.0' }).set('Accept', 'text/event-stream').buffer(true).parse(sseText).expect(200);
    const state = await toolState(http, admin, serverId, tool.id);
    expect(state).toMatchObject({ status: 'INSTALLED', installedVersion: '2.0.0' });
    expect(state.logTail).not.toContain('already installed');
    expect(readFileSync(marker, 'utf8')).toBe('run\n');
    expect(host.calls.filter((c) => c.args.name === tool.name).map((c) => c.tool)).toEqual([
      'check_tool',
      'check_tool',
      'install_tool',
      'check_tool',
    ]);
    const installed = (await audits('server.tool_installed')).map((a) => a.changes).filter((c) => c?.toolId === tool.id);
    expect(installed).toEqual([
      expect.objectContaining({ version: '1.4.2', alreadyInstalled: true }),
      expect.objectContaining({ version: '2.0.0' }),
    ]);
    expect(installed[1]).not.toHaveProperty('alreadyInstalled');
  });

  it('takes the next change as soon as the last one settled, while its workflow is still closing', async () => {
    const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('2.2.2'));
    for (let round = 0; round < 3; round++) {
      const installed = await install({ toolId: tool.id }).set('Accept', 'text/event-stream').buffer(true).parse(sseText);
      expect(installed.status).toBe(200);
      expect(parseSse(installed.body as string).at(-1)!.data.status).toBe('INSTALLED');
      // At once, as a person clicking "uninstall" on the INSTALLED they just saw.
      const removed = await uninstall(tool.id).set('Accept', 'text/event-stream').buffer(true).parse(sseText);
      expect(removed.status).toBe(200);
      expect(parseSse(removed.body as string).at(-1)!.data.status).toBe('NOT_INSTALLED');
    }
  });

  it('runs concurrent install requests of one tool as one workflow: the others get 409 install_running', async () => {
    const spec = gatedVersionFileTool('4.0.0');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, spec);
    const answers = await Promise.all(Array.from({ length: 5 }, () => install({ toolId: tool.id })));
    expect(answers.map((a) => a.status).sort()).toEqual([202, 409, 409, 409, 409]);
    for (const refused of answers.filter((a) => a.status === 409)) {
      expect(refused.body.error).toMatchObject({ code: 'install_running', details: { workflowId: `tool-${serverId}-${tool.id}` } });
    }
    // An uninstall while the install runs is refused the same way.
    expect((await uninstall(tool.id).expect(409)).body.error.code).toBe('install_running');
    spec.openGate();
    await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED']);
    expect(host.calls.filter((c) => c.tool === 'install_tool' && c.args.name === tool.name)).toHaveLength(1);
    expect(await audits('server.tool_install').then((rows) => rows.filter((r) => r.changes?.toolId === tool.id))).toHaveLength(1);
  });

  it('cancels a running install: the host stops the command and the tool ends FAILED "cancelled by request"', async () => {
    const spec = gatedVersionFileTool('5.0.0');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, spec);
    expect((await http.post(`/api/tools/server/${serverId}/${tool.id}/cancel`).set(bearer(admin)).expect(409)).body.error.code).toBe(
      'not_running',
    );
    await install({ toolId: tool.id }).expect(202);
    await host.waitForCall('install_tool', (c) => c.args.name === tool.name, 60_000);
    const cancelled = await http.post(`/api/tools/server/${serverId}/${tool.id}/cancel`).set(bearer(admin)).expect(202);
    expect(cancelled.body).toMatchObject({ action: 'cancel', workflowId: `tool-${serverId}-${tool.id}` });
    const state = await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED', 'FAILED'], 60_000);
    expect(state).toMatchObject({ status: 'FAILED', lastError: 'cancelled by request' });
    // The command was killed on the host: with its gate open, its version file never appears
    // (a command still running would write it within 50 ms).
    spec.openGate();
    await new Promise((r) => setTimeout(r, 1000));
    expect(existsSync(spec.file)).toBe(false);
    expect(await audits('server.tool_cancel')).toHaveLength(1);
  }, 120_000);

  it('says when a server cannot install: no install_tool at all, or commands switched off on its host', async () => {
    const plain: StreamableTestMcpServer = await startMcpServer({ tools: ['execute_prompt', 'echo'] });
    closers.push(() => plain.close());
    const registered = await http
      .post('/api/servers')
      .set(bearer(admin))
      .send({ name: `plain-${Date.now()}`, url: plain.url, masterToken: plain.token })
      .expect(201);
    const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool());
    await install({ toolId: tool.id }, admin, registered.body.id).expect(202);
    expect(await waitForToolState(http, admin, registered.body.id, tool.id, ['INSTALLED', 'FAILED'])).toMatchObject({
      status: 'FAILED',
      lastError: 'this server does not support installs (it offers no install_tool)',
    });

    const locked = await registerHost(http, admin);
    closers.push(() => locked.host.close());
    await install({ toolId: tool.id }, admin, locked.serverId).expect(202);
    expect(await waitForToolState(http, admin, locked.serverId, tool.id, ['INSTALLED', 'FAILED'])).toMatchObject({
      status: 'FAILED',
      lastError: 'this server does not run install commands (they are switched off on its host)',
    });
  });

  it("lists every catalog tool with its state on the server and what the server's tools/list offers, filtered and paginated", async () => {
    const category = `cat-${randomUUID().slice(0, 8)}`;
    const builtin = await catalogEntry(ctx.orm, null, versionFileTool(), { category });
    const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('7.7.7'), { category });
    const others = [];
    for (let i = 0; i < 7; i++) others.push(await catalogEntry(ctx.orm, admin.organizationId, versionFileTool(), { category }));
    await install({ toolId: tool.id }).expect(202);
    await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED']);
    await http.post(`/api/servers/${serverId}/test`).set(bearer(admin)).expect(200);

    const all = await http.get(`/api/tools/server/${serverId}`).query({ category, limit: 100 }).set(bearer(admin)).expect(200);
    expect(all.body.server).toMatchObject({ id: serverId });
    expect(all.body.serverTools.names).toEqual(expect.arrayContaining(['install_tool', 'check_tool', 'execute_prompt']));
    expect(all.body.serverTools.checkedAt).not.toBeNull();
    const ids = all.body.items.map((i: { tool: { id: string } }) => i.tool.id);
    expect(ids.sort()).toEqual([builtin.id, tool.id, ...others.map((o) => o.id)].sort());
    expect(all.body.items.find((i: { tool: { id: string } }) => i.tool.id === builtin.id)).toMatchObject({
      status: 'NOT_INSTALLED',
      installedVersion: null,
      tool: { builtin: true },
    });
    expect(all.body.items.find((i: { tool: { id: string } }) => i.tool.id === tool.id)).toMatchObject({
      status: 'INSTALLED',
      installedVersion: '7.7.7',
      tool: { builtin: false },
    });

    const installed = await http
      .get(`/api/tools/server/${serverId}`)
      .query({ category, status: 'INSTALLED' })
      .set(bearer(admin))
      .expect(200);
    expect(installed.body.items.map((i: { tool: { id: string } }) => i.tool.id)).toEqual([tool.id]);
    const notInstalled = await http
      .get(`/api/tools/server/${serverId}`)
      .query({ category, status: 'NOT_INSTALLED', limit: 100 })
      .set(bearer(admin))
      .expect(200);
    expect(notInstalled.body.items).toHaveLength(8);
    const failed = await http.get(`/api/tools/server/${serverId}`).query({ category, status: 'FAILED' }).set(bearer(admin)).expect(200);
    expect(failed.body.items).toEqual([]);
    // A server nothing was ever installed on: every entry is NOT_INSTALLED, none INSTALLED.
    const fresh = await registerHost(http, admin);
    closers.push(() => fresh.host.close());
    const untouched = await http
      .get(`/api/tools/server/${fresh.serverId}`)
      .query({ category, status: 'NOT_INSTALLED', limit: 100 })
      .set(bearer(admin))
      .expect(200);
    expect(untouched.body.items).toHaveLength(9);
    expect(untouched.body.serverTools).toMatchObject({ names: [], total: 0, checkedAt: null });
    const none = await http
      .get(`/api/tools/server/${fresh.serverId}`)
      .query({ category, status: 'INSTALLED' })
      .set(bearer(admin))
      .expect(200);
    expect(none.body.items).toEqual([]);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { tool: { id: string } }[]; nextCursor: string | null; serverTools: unknown } } = await http
        .get(`/api/tools/server/${serverId}`)
        .query({ category, limit: 4, ...(cursor ? { cursor } : {}) })
        .set(bearer(admin))
        .expect(200);
      if (cursor) expect(page.body.serverTools).toBeNull();
      seen.push(...page.body.items.map((i) => i.tool.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen.sort()).toEqual(ids.sort());
  });

  it('lets every role read, and only ADMIN and MANAGER install, uninstall and cancel', async () => {
    const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool());
    for (const role of ['OPERATOR', 'VIEWER']) {
      const member = await addMember(http, admin, role);
      await http.get(`/api/tools/server/${serverId}`).set(bearer(member)).expect(200);
      await http.get(`/api/tools/server/${serverId}/${tool.id}`).set(bearer(member)).expect(200);
      expect((await install({ toolId: tool.id }, member).expect(403)).body.error.code).toBe('forbidden');
      await uninstall(tool.id, member).expect(403);
      await http.post(`/api/tools/server/${serverId}/${tool.id}/cancel`).set(bearer(member)).expect(403);
    }
    const manager = await addMember(http, admin, 'MANAGER');
    await install({ toolId: tool.id }, manager).expect(202);
    await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED']);
  });

  it("answers 404 for another organisation's server or catalog entry on every route", async () => {
    const other = await registerAccount(http, 'Other Tools Org');
    const theirs = await catalogEntry(ctx.orm, other.organizationId, versionFileTool());
    const mine = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool());
    const asOther = bearer(other);
    const notFound = (res: { status: number; body: { error: { code: string } } }) => {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe('not_found');
    };
    notFound(await http.get(`/api/tools/server/${serverId}`).set(asOther));
    notFound(await http.get(`/api/tools/server/${serverId}/${mine.id}`).set(asOther));
    notFound(await http.get(`/api/tools/server/${serverId}/${mine.id}`).set(asOther).set('Accept', 'text/event-stream'));
    notFound(await install({ toolId: mine.id }, other));
    notFound(await uninstall(mine.id, other));
    notFound(await http.post(`/api/tools/server/${serverId}/${mine.id}/cancel`).set(asOther));
    // Their catalog entry, on my server.
    notFound(await install({ toolId: theirs.id }));
    notFound(await install({ name: theirs.name }));
    notFound(await http.get(`/api/tools/server/${serverId}/${theirs.id}`).set(bearer(admin)));
    notFound(await uninstall(theirs.id));
    const listed = await http.get(`/api/tools/server/${serverId}`).query({ limit: 100 }).set(bearer(admin)).expect(200);
    expect(listed.body.items.map((i: { tool: { id: string } }) => i.tool.id)).not.toContain(theirs.id);
  });

  it('validates the install body field by field', async () => {
    const both = await install({ toolId: '00000000-0000-4000-8000-000000000000', name: 'git' }).expect(400);
    expect(both.body.error.details).toEqual([expect.objectContaining({ path: 'body.toolId', message: 'give either toolId or name' })]);
    const neither = await install({}).expect(400);
    expect(neither.body.error.details[0].path).toBe('body.toolId');
    const bad = await install({ toolId: 'nope', extra: 1 }).expect(400);
    expect(bad.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['body', 'body.toolId']);
    await http.get(`/api/tools/server/not-a-uuid`).set(bearer(admin)).expect(400);
  });

  it('finds drift on the scheduled health run: a changed version is recorded, a vanished tool becomes NOT_INSTALLED', async () => {
    const spec = versionFileTool('1.0.0');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, spec);
    const steady = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('8.0.0'));
    for (const t of [tool, steady]) {
      await install({ toolId: t.id }).expect(202);
      await waitForToolState(http, admin, serverId, t.id, ['INSTALLED']);
    }
    const healthRun = async () =>
      ctx.temporal.client.workflow.execute<ServerHealthWorkflow>(SERVER_HEALTH_WORKFLOW, {
        taskQueue: ctx.config.temporal.taskQueue,
        workflowId: `health-${Date.now()}`,
        args: [{ concurrency: 2, serverIds: [serverId] }],
      });

    writeFileSync(spec.file, 'probe version 1.1.0\n');
    const first = await healthRun();
    expect(first.tools).toMatchObject({ changed: 1, vanished: 0 });
    expect(first.tools.checked).toBeGreaterThanOrEqual(2);
    expect(await toolState(http, admin, serverId, tool.id)).toMatchObject({ status: 'INSTALLED', installedVersion: '1.1.0' });
    expect(await toolState(http, admin, serverId, steady.id)).toMatchObject({ status: 'INSTALLED', installedVersion: '8.0.0' });

    const events = waitForServerToolEvent(tool.id);
    rmSync(spec.file);
    const second = await healthRun();
    expect(second.tools).toMatchObject({ vanished: 1 });
    const vanished = await toolState(http, admin, serverId, tool.id);
    expect(vanished).toMatchObject({ status: 'NOT_INSTALLED', installedVersion: null });
    expect(vanished.lastError).toMatch(/^vanished: the server no longer finds probe-/);
    expect(await events).toMatchObject({ status: 'NOT_INSTALLED', previousStatus: 'INSTALLED', toolId: tool.id });
    const drift = (await audits('server.tool_drift')).map((a) => a.changes).filter((c) => c?.toolId === tool.id);
    expect(drift).toEqual([
      expect.objectContaining({ kind: 'version_changed', from: '1.0.0', to: '1.1.0' }),
      expect.objectContaining({ kind: 'vanished', from: '1.1.0' }),
    ]);
  }, 60_000);

  /** The next `server:tool` event of the tool, as the API instance's hub hears it. */
  function waitForServerToolEvent(toolId: string): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      const stop = ctx.events.subscribe((event) => {
        if (event.type === 'server:tool' && event.toolId === toolId) {
          stop();
          resolve(event as unknown as Record<string, unknown>);
        }
      });
    });
  }
});
