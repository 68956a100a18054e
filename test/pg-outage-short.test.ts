import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import request from 'supertest';
import { startApiServer, type ApiServer } from '../api/server';
import { startEmbeddedPostgres, type EmbeddedPostgres, type EmbeddedPostgresOptions } from '../dev/embedded-postgres';
import { freePort } from '../dev/free-port';
import { startAgentProvision, startServerCheck, startToolInstall } from '../domain/temporal';
import type { AgentHost } from '../host/server';
import { loadConfig } from '../lib/config';
import { migrateUp } from '../lib/orm';
import { registerAccount, type Account } from './api';
import { registerHost, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';
import { SERVER_HEALTH_WORKFLOW, type ServerHealthWorkflow } from '../workflows/contracts/server-check';
import { catalogEntry, removeToolDirs, toolState, versionFileTool } from './tool-fixtures';

/**
 * The short activities of other workflows than runs (a server check, an agent's validation, a
 * tool install) wait for PostgreSQL as runs do (activities/database-wait.ts). Their retry
 * policies alone, three attempts over a few seconds, gave up within any real outage.
 */
describe('PostgreSQL unavailable: server checks, validations and tool installs wait for it', () => {
  let tmpDir: string;
  let pgOptions: EmbeddedPostgresOptions;
  let pg: EmbeddedPostgres | undefined;
  /** The API and a worker with the default grace (2 minutes). */
  let ctx: TestContext;
  /** A worker whose grace is 2 s, on a task queue of its own. */
  let short: TestContext;
  let api: ApiServer;
  const workers: { stop(): Promise<void> }[] = [];
  const hosts: AgentHost[] = [];

  beforeAll(async () => {
    // A PostgreSQL of this test's own, to stop and start: the run's shared one is never touched.
    tmpDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-pg-short-'));
    pgOptions = {
      dataDir: path.join(tmpDir, 'pg'),
      port: await freePort(),
      database: 'mcp_fleet_outage_short',
      runtimeDir: process.env.EMBEDDED_POSTGRES_RUNTIME_DIR,
    };
    pg = await startEmbeddedPostgres(pgOptions);
    const base = loadConfig();
    ctx = await createTestContext({ database: { ...base.database, url: pg.url, poolMax: 5 } });
    short = await createTestContext({ database: { ...base.database, url: pg.url, poolMax: 5, outageGraceMs: 2000 } });
    await migrateUp(ctx.orm);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    workers.push(await startTestWorker(ctx), await startTestWorker(short));
  }, 120_000);

  afterAll(async () => {
    // PostgreSQL first, so that nothing waits for it while closing.
    if (!pg) pg = await startEmbeddedPostgres(pgOptions).catch(() => undefined);
    for (const worker of workers) await worker.stop();
    for (const host of hosts) await host.close();
    await api?.close();
    await short?.close();
    await ctx?.close();
    await pg?.remove();
    removeToolDirs();
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }, 60_000);

  /** The pending activity `type` of a workflow, as Temporal describes it (times in ms). */
  async function pendingActivity(on: TestContext, workflowId: string, type: string) {
    const { raw } = await on.temporal.client.workflow.getHandle(workflowId).describe();
    const found = raw.pendingActivities?.find((a) => a.activityType?.name === type);
    if (!found) return undefined;
    const started = found.lastStartedTime?.seconds;
    return {
      attempt: found.attempt ?? 0,
      startedAt:
        found.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED && started != null
          ? Number(started) * 1000
          : undefined,
      heartbeatAt: found.lastHeartbeatTime?.seconds != null ? Number(found.lastHeartbeatTime.seconds) * 1000 : undefined,
    };
  }

  /** The attempts Temporal started of each activity of a closed workflow (local ones are markers, not counted). */
  async function attemptsOf(on: TestContext, workflowId: string): Promise<number[]> {
    const history = await on.temporal.client.workflow.getHandle(workflowId).fetchHistory();
    return (history.events ?? []).flatMap((e) =>
      e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt ?? 0] : [],
    );
  }

  it('a server check, a health sweep, an agent validation and a tool install started while PostgreSQL is down each finish once, in their first attempt, when it is back; past DATABASE_OUTAGE_GRACE_MS a check and an install give up saying so', async () => {
    const http$ = request(api.url);
    const admin: Account = await registerAccount(http$, 'Short Outage Org');
    const bearer = { type: 'bearer' } as const;
    const registered = await registerHost(http$, admin, { allowCommands: true });
    hosts.push(registered.host);
    const { host, serverId } = registered;
    const created = await http$
      .post('/api/agents')
      .auth(admin.accessToken, bearer)
      .send({ serverId, name: 'validated-in-outage' })
      .expect(201);
    const agentId = created.body.id as string;
    const spec = versionFileTool('3.1.4');
    // Each run of the install command leaves a line: the host ran it once, or twice.
    const tool = await catalogEntry(ctx.orm, admin.organizationId, {
      ...spec,
      installCommand: `echo run >> ${spec.dir}/runs && ${spec.installCommand}`,
    });
    const tooLate = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('9.9.9'));
    const callsOf = (tool: string, match: (args: Record<string, unknown>) => boolean) =>
      host.calls.filter((c) => c.tool === tool && match(c.args)).length;

    // PostgreSQL stops; the workflows are started through Temporal itself (the API answers 503).
    await pg!.stop();
    pg = undefined;
    const stoppedAt = Date.now();
    const organizationId = admin.organizationId;
    const check = await startServerCheck(ctx.temporal, { serverId, reason: 'test', organizationId });
    const validation = await startAgentProvision(ctx.temporal, { agentId, organizationId, serverId, validatedBy: admin.userId });
    const install = await startToolInstall(ctx.temporal, { serverId, toolId: tool.id, organizationId, action: 'install' });
    // A health sweep over every server of this PostgreSQL (the one of this test).
    const health = await ctx.temporal.client.workflow.start<ServerHealthWorkflow>(SERVER_HEALTH_WORKFLOW, {
      taskQueue: ctx.temporal.taskQueue,
      workflowId: `server-health-outage-${randomUUID()}`,
      args: [{ concurrency: 1 }],
    });
    // On the worker whose grace is 2 s: a check and an install that give up.
    const lateCheck = await startServerCheck(short.temporal, { serverId, reason: 'test', organizationId });
    const lateInstall = await startToolInstall(short.temporal, { serverId, toolId: tooLate.id, organizationId, action: 'install' });

    // Waiting, well past the old retry window (three attempts over about 3 s) and past the
    // install's 10 s heartbeat timeout: each regular activity is in its first attempt, beating,
    // and the check (a local activity, which Temporal does not list) keeps its workflow open.
    for (const [workflowId, type] of [
      [validation.workflowId, 'provisionAgent'],
      [install.workflowId, 'changeTool'],
      [health.workflowId, 'listServerIds'],
    ] as const) {
      const held = await waitFor(
        async () => {
          const activity = await pendingActivity(ctx, workflowId, type);
          if (!activity) return undefined;
          expect(activity.attempt).toBe(1);
          return activity.startedAt && Date.now() - activity.startedAt > 15_000 ? activity : undefined;
        },
        90_000,
        500,
      );
      expect(held.heartbeatAt).toBeDefined();
    }
    expect((await check.describe()).status.name).toBe('RUNNING');
    expect(callsOf('provision_agent', (a) => a.agentId === agentId)).toBe(0);
    expect(callsOf('install_tool', () => true)).toBe(0);
    // The 2 s worker's check gave up, saying why; its install waits to record that it failed.
    const lateError = await lateCheck.result().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(lateError).toBeInstanceOf(WorkflowFailedError);
    // A local activity's failure is the workflow's cause itself.
    expect((lateError as WorkflowFailedError).cause).toMatchObject({
      type: 'DatabaseUnavailable',
      message:
        'PostgreSQL was unavailable for more than 2 s (DATABASE_OUTAGE_GRACE_MS) before the server could be checked; it was not contacted',
    });
    await waitFor(async () => (await lateInstall.fetchHistory()).events?.some((e) => e.activityTaskFailedEventAttributes), 60_000, 250);
    const outageMs = Date.now() - stoppedAt;

    // PostgreSQL comes back on the same port and data.
    pg = await startEmbeddedPostgres(pgOptions);
    const restartedAt = Date.now();
    const [checked, validated, installed, lateInstalled, swept] = await Promise.all([
      check.result(),
      validation.result(),
      install.result(),
      lateInstall.result(),
      health.result(),
    ]);
    const doneMs = Date.now() - restartedAt;

    // The check: the server answered, and the row says what the result says.
    expect(checked).toMatchObject({ serverId, ok: true });
    const server = (await http$.get(`/api/servers/${serverId}`).auth(admin.accessToken, bearer).expect(200)).body;
    // (The sweep's check of the same server may have been recorded after it.)
    expect(server).toMatchObject({ status: checked.status });
    expect(Date.parse(server.lastCheckAt as string)).toBeGreaterThanOrEqual(Date.parse(checked.checkedAt));
    // The sweep listed the servers once PostgreSQL answered, and checked this one.
    expect(swept).toMatchObject({ checked: 1, offline: 0, missing: 0 });
    const sweepAttempts = await attemptsOf(ctx, health.workflowId);
    expect(sweepAttempts.length).toBeGreaterThanOrEqual(2);
    expect(sweepAttempts.filter((attempt) => attempt !== 1)).toEqual([]);
    // The validation: one provision_agent and one activate_agent on the host, the agent ACTIVE.
    expect(validated).toEqual({ ok: true });
    expect((await http$.get(`/api/agents/${agentId}`).auth(admin.accessToken, bearer).expect(200)).body).toMatchObject({
      status: 'ACTIVE',
    });
    expect(callsOf('provision_agent', (a) => a.agentId === agentId)).toBe(1);
    expect(callsOf('activate_agent', (a) => a.agentId === agentId)).toBe(1);
    // The install: INSTALLED at the version found, its command run once on the host.
    expect(installed).toMatchObject({ status: 'INSTALLED', version: '3.1.4' });
    expect(await toolState(http$, admin, serverId, tool.id)).toMatchObject({
      status: 'INSTALLED',
      installedVersion: '3.1.4',
      lastError: null,
    });
    expect(callsOf('install_tool', (a) => a.name === tool.name)).toBe(1);
    expect(readFileSync(path.join(spec.dir, 'runs'), 'utf8')).toBe('run\n');
    // Every activity ran in its first attempt only (the check's is a local one, not in the list).
    expect(await attemptsOf(ctx, validation.workflowId)).toEqual([1, 1]);
    expect(await attemptsOf(ctx, install.workflowId)).toEqual([1]);

    // The install past the grace ends with the reason, nothing sent to the host; it never
    // marked the tool INSTALLING, so the tool's row stays as it was (not installed).
    const reason =
      'PostgreSQL was unavailable for more than 2 s (DATABASE_OUTAGE_GRACE_MS) before the install could start; nothing was sent to the server';
    expect(lateInstalled).toEqual({ status: 'NOT_INSTALLED', error: reason });
    expect(await toolState(http$, admin, serverId, tooLate.id)).toMatchObject({ status: 'NOT_INSTALLED' });
    expect(callsOf('install_tool', (a) => a.name === tooLate.name)).toBe(0);
    expect(callsOf('check_tool', (a) => a.name === tooLate.name)).toBe(0);

    process.stdout.write(
      `\n[pg-outage-short] PostgreSQL down ${outageMs} ms; check, sweep, validation and install done ${doneMs} ms after it was back, each in attempt 1\n`,
    );
  }, 240_000);
});
