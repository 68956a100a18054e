import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { AuditLog, ServerTool, ServerToolStatus, type McpServer, type ToolDefinition } from '../../entities';
import { makeOrganization, makeServer } from '../../test/factories';
import { waitFor } from '../../test/fleet';
import { createTestContext, type TestContext } from '../../test/harness';
import { builtinTool } from '../../test/tool-fixtures';
import { EVENTS_CHANNEL, type ServerToolEvent } from '../events';
import { BUSY_STATUSES, serverToolEvent, setServerToolState, type ServerToolRef } from './install-state';

/**
 * The one writer of a tool's state on a server: its guarantees (a guard checked on the latest
 * row, no lost update, audit and event with the change or not at all) and its cost in round
 * trips, counted on the ORM's own connection (each statement, BEGIN and COMMIT is one).
 */
describe('setServerToolState', () => {
  let ctx: TestContext;
  let server: McpServer;
  let listener: Client;
  let other: Client;
  const notices: ServerToolEvent[] = [];
  const em = () => ctx.orm.em.fork();
  let statements = 0;

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = em();
    server = makeServer(setup, makeOrganization(setup));
    await setup.flush();
    ctx.orm.em
      .getConnection()
      .getKnex()
      .on('query', () => statements++);
    listener = new Client({ connectionString: ctx.config.database.url });
    await listener.connect();
    listener.on('notification', (message) => {
      const event = JSON.parse(message.payload ?? '{}') as ServerToolEvent;
      if (event.type === 'server:tool' && event.serverId === server.id) notices.push(event);
    });
    await listener.query(`listen ${EVENTS_CHANNEL}`);
    other = new Client({ connectionString: ctx.config.database.url });
    await other.connect();
  });
  afterAll(async () => {
    await listener?.end();
    await other?.end();
    await ctx?.close();
  });

  const refOf = (tool: ToolDefinition): ServerToolRef => ({
    organizationId: server.organization.id,
    serverId: server.id,
    toolId: tool.id,
    toolName: tool.name,
  });
  const rowOf = (tool: ToolDefinition) => em().findOneOrFail(ServerTool, { server: server.id, tool: tool.id });
  const auditsOf = (tool: ToolDefinition) =>
    em().find(AuditLog, { organization: server.organization.id, changes: { toolId: tool.id } }, { orderBy: { createdAt: 'asc' } });
  /** The notices of `tool` sent before now: NOTIFYs reach a listener in commit order, so a marker sent after them arrives last. */
  async function noticesOf(tool: ToolDefinition): Promise<ServerToolEvent[]> {
    const marker = randomUUID();
    const event = { type: 'server:tool', organizationId: server.organization.id, serverId: server.id, toolId: marker };
    await other.query('select pg_notify($1, $2)', [EVENTS_CHANNEL, JSON.stringify(event)]);
    await waitFor(async () => notices.some((n) => n.toolId === marker));
    return notices.filter((n) => n.toolId === tool.id);
  }
  /** A tool whose row a workflow owns, INSTALLING. */
  async function installing(workflowId: string): Promise<ToolDefinition> {
    const tool = await builtinTool(em());
    await setServerToolState(em(), refOf(tool), { status: ServerToolStatus.INSTALLING, workflowId });
    return tool;
  }
  const installed = (workflowId: string) =>
    [
      { status: ServerToolStatus.INSTALLED, installedVersion: '2.1.0', installedAt: new Date(), lastError: null, logTail: 'ok' },
      { workflowId, from: BUSY_STATUSES },
      { action: 'server.tool_installed', resourceType: 'server', resourceId: server.id, changes: { workflowId } },
    ] as const;

  it('writes an install’s outcome, its audit row and its event in one round trip', async () => {
    const tool = await installing('wf-1');
    const [change, guard, audit] = installed('wf-1');
    const before = statements;
    const done = await setServerToolState(em(), refOf(tool), change, guard, { ...audit, changes: { ...audit.changes, toolId: tool.id } });
    // Before: BEGIN, SELECT … FOR UPDATE, UPDATE, INSERT audit, NOTIFY, COMMIT.
    expect(statements - before).toBe(1);

    expect(done).toMatchObject({ previousStatus: ServerToolStatus.INSTALLING, previousVersion: null, announced: true });
    expect(done!.row).toMatchObject({ status: ServerToolStatus.INSTALLED, installedVersion: '2.1.0', workflowId: 'wf-1', logTail: 'ok' });
    const row = await rowOf(tool);
    expect(row).toMatchObject({ status: ServerToolStatus.INSTALLED, installedVersion: '2.1.0', workflowId: 'wf-1', logTail: 'ok' });
    expect(row.installedAt).toBeInstanceOf(Date);
    expect((await auditsOf(tool)).map((a) => [a.action, a.resourceId, a.changes])).toEqual([
      ['server.tool_installed', server.id, { workflowId: 'wf-1', toolId: tool.id }],
    ]);
    const events = await noticesOf(tool);
    expect(events.map((e) => [e.previousStatus, e.status])).toEqual([
      [ServerToolStatus.NOT_INSTALLED, ServerToolStatus.INSTALLING],
      [ServerToolStatus.INSTALLING, ServerToolStatus.INSTALLED],
    ]);
    // The event as its one builder makes it from the row written.
    const { at, ...event } = events[1]!;
    const { at: _at, ...expected } = serverToolEvent(
      { serverId: server.id, toolId: tool.id, status: row.status, installedVersion: row.installedVersion, lastError: row.lastError },
      tool.name,
      server.organization.id,
      ServerToolStatus.INSTALLING,
    );
    expect(event).toEqual(expected);
    expect(Number.isNaN(Date.parse(at))).toBe(false);
  });

  it('creates the row on a tool’s first change, announced as coming from NOT_INSTALLED', async () => {
    const tool = await builtinTool(em());
    const before = statements;
    const done = await setServerToolState(em(), refOf(tool), { status: ServerToolStatus.INSTALLING, workflowId: 'wf-new' });
    // Before: BEGIN, SELECT … FOR UPDATE, INSERT, SELECT … FOR UPDATE, UPDATE, NOTIFY, COMMIT.
    expect(statements - before).toBe(1);
    expect(done).toMatchObject({ previousStatus: ServerToolStatus.NOT_INSTALLED, announced: true });
    expect(await rowOf(tool)).toMatchObject({
      status: ServerToolStatus.INSTALLING,
      workflowId: 'wf-new',
      organization: { id: server.organization.id },
    });
    const [event] = await noticesOf(tool);
    expect(event).toMatchObject({
      status: ServerToolStatus.INSTALLING,
      previousStatus: ServerToolStatus.NOT_INSTALLED,
      error: null,
      version: null,
    });
  });

  it('makes concurrent first changes one after the other: one inserts the row, the other changes it', async () => {
    const tool = await builtinTool(em());
    const ref = refOf(tool);
    const results = await Promise.all(
      ['wf-x', 'wf-y', 'wf-z'].map((workflowId) => setServerToolState(em(), ref, { status: ServerToolStatus.INSTALLING, workflowId })),
    );
    expect(results.map((r) => r?.previousStatus).sort()).toEqual([
      ServerToolStatus.INSTALLING,
      ServerToolStatus.INSTALLING,
      ServerToolStatus.NOT_INSTALLED,
    ]);
    // The last one's workflow owns the row; only the first was a change anyone would notice.
    expect(['wf-x', 'wf-y', 'wf-z']).toContain((await rowOf(tool)).workflowId);
    expect(await em().count(ServerTool, { server: server.id, tool: tool.id })).toBe(1);
    expect((await noticesOf(tool)).map((e) => [e.previousStatus, e.status])).toEqual([
      [ServerToolStatus.NOT_INSTALLED, ServerToolStatus.INSTALLING],
    ]);
  });

  it('changes the row another first writer inserted while its own insert waited', async () => {
    const tool = await builtinTool(em());
    const holder = new Client({ connectionString: ctx.config.database.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query(
        `insert into server_tools (id, created_at, updated_at, organization_id, server_id, tool_id, status, last_error)
         values (gen_random_uuid(), now(), now(), $1, $2, $3, 'FAILED', 'earlier')`,
        [server.organization.id, server.id, tool.id],
      );
      const first = setServerToolState(em(), refOf(tool), { status: ServerToolStatus.INSTALLING, workflowId: 'wf-second' });
      // Its insert waits on the holder's uncommitted row (the unique key).
      await waitFor(
        async () =>
          (await other.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rowCount! >
          0,
      );
      await holder.query('commit');
      expect(await first).toMatchObject({ previousStatus: ServerToolStatus.FAILED, announced: true });
      expect(await rowOf(tool)).toMatchObject({ status: ServerToolStatus.INSTALLING, workflowId: 'wf-second', lastError: 'earlier' });
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
    }
  });

  it('creates no row when the guard does not hold for a tool never changed', async () => {
    const tool = await builtinTool(em());
    const [change, guard, audit] = installed('wf-none');
    expect(await setServerToolState(em(), refOf(tool), change, guard, audit)).toBeNull();
    expect(await em().findOne(ServerTool, { server: server.id, tool: tool.id })).toBeNull();
    expect(await noticesOf(tool)).toEqual([]);
  });

  it('writes, audits and announces nothing when the guard fails: another workflow’s row, a status outside `from`, a version that moved', async () => {
    const tool = await installing('wf-current');
    const ref = refOf(tool);
    const [change, guard, audit] = installed('wf-stale');
    const auditOf = { ...audit, changes: { toolId: tool.id } };
    // A stale attempt (an earlier workflow of this tool) cannot overwrite the current one.
    expect(await setServerToolState(em(), ref, change, guard, auditOf)).toBeNull();
    // Only from a busy status.
    expect(await setServerToolState(em(), ref, change, { from: [ServerToolStatus.FAILED] }, auditOf)).toBeNull();
    // A drift reading of a version the row no longer has.
    expect(await setServerToolState(em(), ref, change, { installedVersion: '1.0.0' }, auditOf)).toBeNull();
    expect(await rowOf(tool)).toMatchObject({ status: ServerToolStatus.INSTALLING, workflowId: 'wf-current' });
    expect(await auditsOf(tool)).toEqual([]);
    expect((await noticesOf(tool)).map((e) => e.status)).toEqual([ServerToolStatus.INSTALLING]);
  });

  it('audits but does not announce a change that leaves status, version and error as they were', async () => {
    const tool = await installing('wf-same');
    const checkedAt = new Date('2026-01-02T03:04:05Z');
    const done = await setServerToolState(
      em(),
      refOf(tool),
      { status: ServerToolStatus.INSTALLING, checkedAt },
      { workflowId: 'wf-same' },
      {
        action: 'server.tool_checked',
        resourceType: 'server',
        changes: { toolId: tool.id },
      },
    );
    expect(done).toMatchObject({ previousStatus: ServerToolStatus.INSTALLING, announced: false });
    expect((await rowOf(tool)).checkedAt).toEqual(checkedAt);
    expect((await auditsOf(tool)).map((a) => a.action)).toEqual(['server.tool_checked']);
    expect((await noticesOf(tool)).map((e) => e.status)).toEqual([ServerToolStatus.INSTALLING]);
  });

  it('checks the guard on the row as a writer holding the lock left it: no lost update, either way', async () => {
    const tool = await installing('wf-a');
    const ref = refOf(tool);
    const [change, guard] = installed('wf-a');
    // Our statement is blocked on the holder's row lock (nothing else in this database waits on one).
    const waiting = async () =>
      (await other.query(`select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)).rowCount! > 0;
    const holder = new Client({ connectionString: ctx.config.database.url });
    await holder.connect();
    try {
      // A newer change takes the row (another workflow) while ours waits for the lock: ours must not overwrite it.
      await holder.query('begin');
      await holder.query('select 1 from server_tools where server_id = $1 and tool_id = $2 for update', [server.id, tool.id]);
      const stale = setServerToolState(em(), ref, change, guard);
      await waitFor(waiting);
      await holder.query(`update server_tools set workflow_id = 'wf-b' where server_id = $1 and tool_id = $2`, [server.id, tool.id]);
      await holder.query('commit');
      expect(await stale).toBeNull();
      expect(await rowOf(tool)).toMatchObject({ status: ServerToolStatus.INSTALLING, workflowId: 'wf-b' });

      // And a guard that the holder's change makes true holds once it commits.
      await holder.query('begin');
      await holder.query('select 1 from server_tools where server_id = $1 and tool_id = $2 for update', [server.id, tool.id]);
      const current = setServerToolState(em(), ref, change, { workflowId: 'wf-c', from: BUSY_STATUSES });
      await waitFor(waiting);
      await holder.query(`update server_tools set workflow_id = 'wf-c', last_error = 'x' where server_id = $1 and tool_id = $2`, [
        server.id,
        tool.id,
      ]);
      await holder.query('commit');
      expect(await current).toMatchObject({ previousStatus: ServerToolStatus.INSTALLING, announced: true });
      expect(await rowOf(tool)).toMatchObject({ status: ServerToolStatus.INSTALLED, workflowId: 'wf-c', lastError: null });
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
    }
  });

  it('lets one of two concurrent outcomes of the same workflow win: the other finds the row settled', async () => {
    const tool = await installing('wf-twice');
    const [change, guard, audit] = installed('wf-twice');
    const auditOf = { ...audit, changes: { toolId: tool.id } };
    const results = await Promise.all([
      setServerToolState(em(), refOf(tool), change, guard, auditOf),
      setServerToolState(em(), refOf(tool), { status: ServerToolStatus.FAILED, lastError: 'cancelled' }, guard, auditOf),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await auditsOf(tool)).toHaveLength(1);
    const events = await noticesOf(tool);
    expect(events.map((e) => e.previousStatus)).toEqual([ServerToolStatus.NOT_INSTALLED, ServerToolStatus.INSTALLING]);
  });
});
