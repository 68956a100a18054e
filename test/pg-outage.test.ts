import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import request from 'supertest';
import { startApiServer, type ApiServer } from '../api/server';
import { startEmbeddedPostgres, type EmbeddedPostgres, type EmbeddedPostgresOptions } from '../dev/embedded-postgres';
import { freePort } from '../dev/free-port';
import type { AgentExecutionPayload } from '../domain/events';
import type { AgentHost } from '../host/server';
import { loadConfig } from '../lib/config';
import { migrateUp } from '../lib/orm';
import { PASSWORD, randomIp, registerAccount, type Account } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, spawnWorkerProcess, type TestContext } from './harness';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
const OUTAGE_MS = 30_000;

/**
 * An SSE client of one run's events that behaves as EventSource does: it reconnects after a
 * pause with Last-Event-ID whenever its stream ends before the final status (or cannot be had),
 * and stops at the final status or at a 204. It keeps every event id it received, over all its
 * connections, and every answer that was not a stream.
 */
function followRun(baseUrl: string, executionId: string, token: string, options: { reconnect: boolean }) {
  const seqs: number[] = [];
  const refusals: { status: number; code?: string; retryAfter?: string }[] = [];
  let connections = 0;
  let current: http.ClientRequest | undefined;
  let finished = false;
  let stopped = false;
  const connectOnce = () =>
    new Promise<void>((resolve) => {
      const last = seqs.at(-1);
      const req = http.get(
        `${baseUrl}/api/executions/${executionId}/events`,
        {
          headers: { Accept: 'text/event-stream', Authorization: `Bearer ${token}`, ...(last ? { 'Last-Event-ID': String(last) } : {}) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          if (res.statusCode !== 200) {
            res.on('data', (chunk: string) => (text += chunk));
            res.on('end', () => {
              if (res.statusCode === 204) finished = true;
              else
                refusals.push({
                  status: res.statusCode ?? 0,
                  code: (JSON.parse(text || '{}') as { error?: { code?: string } }).error?.code,
                  retryAfter: res.headers['retry-after'],
                });
              resolve();
            });
            return;
          }
          connections++;
          res.on('data', (chunk: string) => {
            text += chunk;
            let end: number;
            while ((end = text.indexOf('\n\n')) >= 0) {
              const lines = text.slice(0, end).split('\n');
              text = text.slice(end + 2);
              const id = lines.find((l) => l.startsWith('id: '));
              const data = lines.find((l) => l.startsWith('data: '));
              if (!id || !data) continue;
              seqs.push(Number(id.slice(4)));
              const payload = JSON.parse(data.slice(6)) as AgentExecutionPayload;
              if (payload.phase === 'status' && FINAL.includes(payload.status ?? '')) finished = true;
            }
          });
          res.on('close', resolve);
        },
      );
      req.on('error', () => resolve());
      current = req;
    });
  const done = (async () => {
    for (;;) {
      await connectOnce();
      if (finished || stopped || !options.reconnect) return;
      await new Promise((r) => setTimeout(r, 500));
    }
  })();
  return {
    seqs,
    refusals,
    done,
    get connections() {
      return connections;
    },
    get finished() {
      return finished;
    },
    /** Cuts the current connection, as a proxy or a network blip would. */
    drop: () => current?.destroy(),
    /** Gives up (a failed test's clean-up). */
    stop: () => {
      stopped = true;
      current?.destroy();
    },
  };
}

describe('PostgreSQL unavailable for 30 s', () => {
  let tmpDir: string;
  let pgOptions: EmbeddedPostgresOptions;
  let pg: EmbeddedPostgres | undefined;
  let ctx: TestContext;
  let api: ApiServer;
  let worker: ChildProcess;
  let workerErrors = '';
  const hosts: AgentHost[] = [];
  const clients: ReturnType<typeof followRun>[] = [];

  beforeAll(async () => {
    // A PostgreSQL of this test's own, to stop and start: the run's shared one is never touched.
    tmpDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-pg-outage-'));
    pgOptions = {
      dataDir: path.join(tmpDir, 'pg'),
      port: await freePort(),
      database: 'mcp_fleet_outage',
      runtimeDir: process.env.EMBEDDED_POSTGRES_RUNTIME_DIR,
    };
    pg = await startEmbeddedPostgres(pgOptions);
    const base = loadConfig();
    ctx = await createTestContext({
      database: { ...base.database, url: pg.url, poolMax: 5 },
      http: { ...base.http, trustProxy: true },
    });
    await migrateUp(ctx.orm);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    worker = spawnWorkerProcess(ctx, { DATABASE_URL: pg.url });
    worker.stderr?.on('data', (chunk: Buffer) => (workerErrors = (workerErrors + chunk.toString()).slice(-20_000)));
  }, 120_000);

  afterAll(async () => {
    for (const client of clients) client.stop();
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
    }
    for (const host of hosts) await host.close();
    await api?.close();
    await ctx?.close();
    await pg?.remove();
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }, 60_000);

  it('answers 503 database_unavailable fast meanwhile; runs in flight complete with their logs whole; SSE resumes without loss; LISTEN and live events come back; no process dies', async () => {
    const http$ = request(api.url);
    const admin: Account = await registerAccount(http$, 'Outage Org');
    const bearer = { type: 'bearer' } as const;
    const registered = await registerHost(http$, admin, { stepDelayMs: 100 });
    hosts.push(registered.host);
    // The worker process polls its task queue (tsx start-up takes a while on a loaded machine);
    // then the agent's validation runs on it.
    await waitFor(
      async () =>
        ((
          await ctx.temporal.client.workflowService.describeTaskQueue({
            namespace: ctx.config.temporal.namespace,
            taskQueue: { name: ctx.config.temporal.taskQueue },
            taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
          })
        ).pollers?.length ?? 0) > 0,
      120_000,
      250,
    );
    const agent = await activeAgent(http$, admin, registered.serverId, { maxConcurrency: 3 });

    // Three runs of a few seconds of events each, in flight when PostgreSQL stops.
    const runIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await http$
        .post(`/api/agents/${agent.id}/execute`)
        .auth(admin.accessToken, bearer)
        .send({ prompt: `outage run ${i} [steps:30] [delay:150]` })
        .expect(202);
      runIds.push(res.body.executionId as string);
    }
    const sse = followRun(api.url, runIds[0]!, admin.accessToken, { reconnect: true });
    clients.push(sse);
    const eventCount = async (id: string) =>
      ((await http$.get(`/api/executions/${id}/events`).auth(admin.accessToken, bearer)).body.items as unknown[]).length;
    await waitFor(async () => {
      for (const id of runIds) if ((await eventCount(id)) < 4) return false;
      return sse.seqs.length >= 3;
    }, 60_000);

    // The published document, read before the outage: each probe below is documented with a 503.
    const document = (await http$.get('/api/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, { responses: Record<string, { description: string; headers?: Record<string, unknown> }> }>>;
    };

    // PostgreSQL stops (a fast shutdown: sessions are ended, then the port refuses).
    const stoppedAt = Date.now();
    await pg!.stop();
    pg = undefined;
    // The SSE client's connection is cut too, as a proxy would: it reconnects with Last-Event-ID.
    sse.drop();

    // Meanwhile, every request that needs the database answers 503 database_unavailable with
    // Retry-After, in the time a refused connection takes, never a 500 and never a hang.
    const answers: { what: string; status: number; code?: string; retryAfter?: string; ms: number }[] = [];
    const probes: [string, () => request.Test][] = [
      ['GET /api/agents', () => http$.get('/api/agents').auth(admin.accessToken, bearer)],
      ['GET /api/executions/:id', () => http$.get(`/api/executions/${runIds[1]}`).auth(admin.accessToken, bearer)],
      [
        'POST /api/agents/:id/execute',
        () => http$.post(`/api/agents/${agent.id}/execute`).auth(admin.accessToken, bearer).send({ prompt: 'x' }),
      ],
      [
        'POST /api/auth/login',
        () => http$.post('/api/auth/login').set('X-Forwarded-For', randomIp()).send({ email: admin.email, password: PASSWORD }),
      ],
    ];
    while (Date.now() - stoppedAt < OUTAGE_MS) {
      for (const [what, probe] of probes) {
        const started = Date.now();
        const res = await probe();
        answers.push({
          what,
          status: res.status,
          code: res.body?.error?.code,
          retryAfter: res.headers['retry-after'],
          ms: Date.now() - started,
        });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(answers.length).toBeGreaterThanOrEqual(8);
    for (const what of new Set(answers.map((a) => a.what))) {
      const [method, path] = what.split(' ') as [string, string];
      const documented = document.paths[path.replace(/:(\w+)/g, '{$1}')]?.[method.toLowerCase()]?.responses['503'];
      expect({ what, description: documented?.description, retryAfter: !!documented?.headers?.['Retry-After'] }).toEqual({
        what,
        description: expect.stringContaining('database_unavailable'),
        retryAfter: true,
      });
    }
    expect(answers.filter((a) => a.status !== 503 || a.code !== 'database_unavailable' || a.retryAfter !== '5')).toEqual([]);
    // "Fast": well inside the pool's own bounds (lib/orm.ts), which a hang would run into.
    const latencies = answers.map((a) => a.ms).sort((a, b) => a - b);
    expect(latencies.at(-1)).toBeLessThan(10_000);
    // The SSE client was refused the same way while it tried to resume.
    expect(sse.refusals.length).toBeGreaterThan(0);
    expect(sse.refusals.filter((r) => r.status !== 503 || r.code !== 'database_unavailable')).toEqual([]);

    // PostgreSQL comes back on the same port and data.
    pg = await startEmbeddedPostgres(pgOptions);
    const restartedAt = Date.now();
    await waitFor(async () => (await http$.get('/api/agents').auth(admin.accessToken, bearer)).status === 200, 60_000, 100);
    const recoveredMs = Date.now() - restartedAt;

    // Every run in flight finishes as it would have: COMPLETED, in its first attempt, its log gapless.
    const finals = await waitFor(
      async () => {
        const rows = await Promise.all(
          runIds.map(async (id) => (await http$.get(`/api/executions/${id}`).auth(admin.accessToken, bearer)).body),
        );
        return rows.every((r: { status: string }) => FINAL.includes(r.status)) ? rows : undefined;
      },
      90_000,
      250,
    );
    const runsDoneMs = Date.now() - restartedAt;
    for (const run of finals) expect(run).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    const logs: AgentExecutionPayload[][] = [];
    for (const id of runIds) {
      const events = (await http$.get(`/api/executions/${id}/events`).query({ limit: 1000 }).auth(admin.accessToken, bearer)).body
        .items as AgentExecutionPayload[];
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.phase === 'output' && /^chunk \d+/.test(e.output ?? '')).length).toBe(30);
      expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED' });
      logs.push(events);
    }

    // The SSE client, resumed with Last-Event-ID, saw exactly the stored log: nothing lost, nothing twice.
    await waitFor(async () => sse.finished, 60_000, 100);
    await sse.done;
    expect(sse.seqs).toEqual(logs[0]!.map((e) => e.seq));
    expect(sse.connections).toBeGreaterThanOrEqual(2);

    // The API's LISTEN connection is back (and the worker's): a new run's events reach a stream
    // opened at its start, live, through the hub, to its final status.
    await waitFor(
      async () =>
        Number(
          (
            await ctx.orm.em
              .fork()
              .execute<{ n: string }[]>(
                "select count(*) as n from pg_stat_activity where query ilike 'listen %' and datname = current_database()",
              )
          )[0]!.n,
        ) >= 2,
      60_000,
      100,
    );
    const fresh = await http$
      .post(`/api/agents/${agent.id}/execute`)
      .auth(admin.accessToken, bearer)
      .send({ prompt: 'after the outage [steps:10] [delay:100]' })
      .expect(202);
    const live = followRun(api.url, fresh.body.executionId as string, admin.accessToken, { reconnect: false });
    clients.push(live);
    await live.done;
    expect(live.finished).toBe(true);
    expect(live.connections).toBe(1);
    expect(live.seqs).toEqual(live.seqs.map((_, i) => i + 1));

    // Neither process died: the worker process still runs, and the API still serves.
    expect(worker.exitCode).toBeNull();
    expect(workerErrors).not.toMatch(/worker failed|unhandled/i);
    expect(api.server.listening).toBe(true);

    process.stdout.write(
      `\n[pg-outage] ${answers.length} answers during the outage, all 503: median ${latencies[latencies.length >> 1]} ms, max ${latencies.at(-1)} ms; ` +
        `API serving again ${recoveredMs} ms after the restart, runs completed ${runsDoneMs} ms after; ` +
        `SSE: ${sse.seqs.length} events over ${sse.connections} connections (${sse.refusals.length} refused), stored ${logs[0]!.length}, 0 lost, 0 duplicated\n`,
    );
  }, 240_000);

  /** The pending activity of a run's workflow named `type`, as Temporal describes it (times in ms). */
  async function pendingActivity(workflowId: string, type: string) {
    const ms = (t?: { seconds?: unknown; nanos?: number | null } | null) =>
      t?.seconds == null ? undefined : Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
    const { raw } = await ctx.temporal.client.workflow.getHandle(workflowId).describe();
    const found = raw.pendingActivities?.find((a) => a.activityType?.name === type);
    if (!found) return undefined;
    return {
      attempt: found.attempt ?? 0,
      started: found.state === temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
      startedAt: ms(found.lastStartedTime),
      heartbeatAt: ms(found.lastHeartbeatTime),
    };
  }

  /**
   * Starts a run whose workflow the worker takes up only once PostgreSQL is down: the worker is
   * paused (SIGSTOP) while the run is accepted and PostgreSQL stops, then goes on (SIGCONT).
   */
  async function runStartedDuringTheOutage(http$: request.Agent, token: string, agentId: string, paused: ChildProcess, prompt: string) {
    paused.kill('SIGSTOP');
    try {
      const res = await http$.post(`/api/agents/${agentId}/execute`).auth(token, { type: 'bearer' }).send({ prompt }).expect(202);
      await pg!.stop();
      pg = undefined;
      return { executionId: res.body.executionId as string, workflowId: res.body.workflowId as string };
    } finally {
      paused.kill('SIGCONT');
    }
  }

  it('runs a run whose workflow starts during the outage once, in its first attempt, after PostgreSQL returns; past DATABASE_OUTAGE_GRACE_MS such a run fails saying its prompt was never sent', async () => {
    const http$ = request.agent(api.url);
    const admin = await registerAccount(http$, 'Outage Start Org');
    const bearer = { type: 'bearer' } as const;
    const registered = await registerHost(http$, admin, { stepDelayMs: 20 });
    hosts.push(registered.host);
    const agent = await activeAgent(http$, admin, registered.serverId, { maxConcurrency: 3 });
    const prompts = (id: string) => registered.host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === id).length;
    const detail = async (id: string) => (await http$.get(`/api/executions/${id}`).auth(admin.accessToken, bearer)).body;

    // 1. Within the grace (the worker's default, 2 minutes): the attempt waits for PostgreSQL,
    // beating, for longer than its 10 s heartbeat timeout, with no second attempt beside it.
    const waiting = await runStartedDuringTheOutage(
      http$,
      admin.accessToken,
      agent.id,
      worker,
      'started in the outage [steps:5] [delay:50]',
    );
    const held = await waitFor(
      async () => {
        const activity = await pendingActivity(waiting.workflowId, 'executePrompt');
        if (!activity) return undefined;
        expect(activity.attempt).toBe(1);
        return activity.started && activity.startedAt && Date.now() - activity.startedAt > 15_000 ? activity : undefined;
      },
      90_000,
      500,
    );
    expect(held.heartbeatAt).toBeDefined();
    expect(prompts(waiting.executionId)).toBe(0);
    pg = await startEmbeddedPostgres(pgOptions);
    const completed = await waitFor(
      async () => {
        const run = await detail(waiting.executionId);
        return FINAL.includes(run.status) ? run : undefined;
      },
      90_000,
      250,
    );
    expect(completed).toMatchObject({ status: 'COMPLETED', attempt: 1 });
    expect(prompts(waiting.executionId)).toBe(1);
    const events = (await http$.get(`/api/executions/${waiting.executionId}/events`).auth(admin.accessToken, bearer)).body
      .items as AgentExecutionPayload[];
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED' });

    // 2. Past the grace: a worker whose grace is 2 s gives the run up before its host hears of
    // it, and the run says so once PostgreSQL is back to record it.
    const stopping = new Promise((r) => worker.once('exit', r));
    worker.kill('SIGTERM');
    await stopping;
    worker = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'worker', 'main.ts')], {
      cwd: path.join(__dirname, '..'),
      env: {
        ...process.env,
        DATABASE_URL: pg.url,
        TEMPORAL_TASK_QUEUE: ctx.config.temporal.taskQueue,
        DATABASE_OUTAGE_GRACE_MS: '2000',
        LOG_LEVEL: 'info',
        LOG_PRETTY: 'false',
        WEBHOOK_OUTBOX: 'off',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let workerOut = '';
    worker.stdout?.on('data', (chunk: Buffer) => (workerOut = (workerOut + chunk.toString()).slice(-50_000)));
    worker.stderr?.on('data', (chunk: Buffer) => (workerErrors = (workerErrors + chunk.toString()).slice(-20_000)));
    await waitFor(async () => workerOut.includes('"worker ready"'), 120_000, 100);
    const given = await runStartedDuringTheOutage(http$, admin.accessToken, agent.id, worker, 'never sent [steps:2]');
    // The attempt gave up (the workflow now waits to record the failure).
    await waitFor(async () => !!(await pendingActivity(given.workflowId, 'finishRun')), 90_000, 250);
    expect(prompts(given.executionId)).toBe(0);
    pg = await startEmbeddedPostgres(pgOptions);
    const failed = await waitFor(
      async () => {
        const run = await detail(given.executionId);
        return FINAL.includes(run.status) ? run : undefined;
      },
      90_000,
      250,
    );
    expect(failed).toMatchObject({
      status: 'FAILED',
      attempt: 1,
      error:
        'PostgreSQL was unavailable for more than 2 s (DATABASE_OUTAGE_GRACE_MS) before the run could start; its prompt was never sent to the host',
    });
    expect(prompts(given.executionId)).toBe(0);
    expect(worker.exitCode).toBeNull();
    expect(workerErrors).not.toMatch(/unhandled/i);
  }, 300_000);
});
