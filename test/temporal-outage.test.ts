import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { API_TEMPORAL_CALLS } from '../api/deps';
import { WORKER_SHUTDOWN_REPORT_MS } from '../worker/worker';
import { startTemporalDevServer, type TemporalDevServer } from '../dev/temporal-dev-server';
import { freePort } from '../dev/free-port';
import type { AgentHost } from '../host/server';
import { loadConfig } from '../lib/config';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, registerHost, waitFor } from './fleet';
import { createTestContext, type TestContext } from './harness';
import { FINAL, taskApi } from './tasks';

/**
 * Issue 21, "Temporal unavailable": a Temporal dev server of this file's own, on a SQLite file,
 * killed for about 30 s under an API, a worker process, runs in flight and a task's schedule,
 * then started again on the same file and port. The shared server of the run is never touched.
 */

/** How long Temporal stays down: the scenario itself, not a wait for something. */
const OUTAGE_MS = 30_000;

/** The real worker entry point in its own process, against this file's Temporal. */
function spawnWorker(ctx: TestContext, address: string, log: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'worker', 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: address,
      TEMPORAL_TASK_QUEUE: ctx.config.temporal.taskQueue,
      LOG_LEVEL: 'warn',
      LOG_PRETTY: 'false',
      WEBHOOK_OUTBOX: 'off',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  // Its log (JSON lines on stdout, a crash on stderr), for the assertion that it is still running.
  const keep = (chunk: Buffer) => log.push(chunk.toString('utf8'));
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return child;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('Temporal unavailable for 30 s', () => {
  let dataDir: string;
  let port: number;
  let temporal: TemporalDevServer | undefined;
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let host: AgentHost | undefined;
  let worker: ChildProcess | undefined;
  const workerLog: string[] = [];

  const startTemporal = () =>
    startTemporalDevServer({
      port,
      namespace: 'default',
      dbFile: path.join(dataDir, 'temporal.db'),
      cliPath: process.env.TEMPORAL_CLI_PATH,
    });

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(process.env.DATA_DIR ?? os.tmpdir(), 'temporal-outage-'));
    port = await freePort();
    temporal = await startTemporal();
    const base = loadConfig();
    ctx = await createTestContext({
      temporal: { ...base.temporal, address: temporal.address, taskQueue: 'temporal-outage' },
      // A schedule that fires every 5 s keeps the test short.
      tasks: { ...base.tasks, minIntervalSeconds: 5 },
    });
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Temporal Outage Org');
    worker = spawnWorker(ctx, temporal.address, workerLog);
  }, 120_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGKILL');
      await exited;
    }
    await host?.close();
    await ctx?.close();
    await temporal?.stop();
  });

  it('answers 503 temporal_unavailable with Retry-After meanwhile, then finishes the runs in flight, fires the schedule again, and runs no occurrence twice', async () => {
    const auth = { Authorization: `Bearer ${admin.accessToken}` };
    const registered = await registerHost(http, admin, { stepDelayMs: 100 });
    host = registered.host;
    const serverId = registered.serverId;
    const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 10 });
    const tasks = taskApi(http, admin);
    const task = await tasks.create({
      agentId: agent.id,
      prompt: 'scheduled job [steps:3] [delay:100]',
      executionMode: 'RECURRING',
      cronExpression: '*/5 * * * * *',
      overlapPolicy: 'ALLOW_ALL',
    });
    // The schedule fires before the outage.
    await waitFor(async () => (await tasks.runs(task.id)).some((r) => r.status === 'COMPLETED'), 60_000, 200);

    // Runs in flight on the host: one that ends there while Temporal is down (its worker reports it
    // afterwards), one that still runs when Temporal is back (its heartbeats fail meanwhile).
    const inFlight: string[] = [];
    for (const prompt of ['short job [steps:20] [delay:200]', 'long job [steps:50] [delay:1000]']) {
      const res = await http.post(`/api/agents/${agent.id}/execute`).set(auth).send({ prompt }).expect(202);
      inFlight.push(res.body.executionId as string);
    }
    for (const id of inFlight) await host.waitForCall('execute_prompt', (c) => c.args.executionId === id, 30_000);

    // The outage: SIGKILL, as a crash would.
    // The CLI's own process (.tools/temporal, TEMPORAL_CLI_PATH); the SDK-downloaded server has none to kill.
    const pid = temporal!.pid;
    if (!pid) throw new Error(`this test kills the Temporal CLI's process; the server came from ${temporal!.source}`);
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => !alive(pid), 30_000, 50);
    const downAt = Date.now();

    // Meanwhile: Temporal-backed routes answer 503 temporal_unavailable with Retry-After, within a bound.
    const timed = async (call: () => Promise<{ status: number; body: { error?: { code: string } }; headers: Record<string, string> }>) => {
      const started = Date.now();
      const res = await call();
      return { res, ms: Date.now() - started };
    };
    const during = {
      execute: await timed(() => http.post(`/api/agents/${agent.id}/execute`).set(auth).send({ prompt: 'during the outage' })),
      runTask: await timed(() => http.post(`/api/tasks/${task.id}/run`).set(auth)),
      createTask: await timed(() =>
        http
          .post('/api/tasks')
          .set(auth)
          .send({ title: 'new', agentId: agent.id, prompt: 'x', executionMode: 'RECURRING', cronExpression: '0 9 * * *' }),
      ),
      serverTest: await timed(() => http.post(`/api/servers/${serverId}/test`).set(auth)),
    };
    const health = await timed(() => http.get('/api/health'));
    process.stdout.write(
      `[temporal-outage] during the outage: ${Object.entries(during)
        .map(([name, { res, ms }]) => `${name} ${res.status} in ${ms} ms`)
        .join(', ')}; health ${health.res.status} in ${health.ms} ms\n`,
    );
    for (const [name, { res, ms }] of Object.entries(during)) {
      expect({ name, status: res.status, code: res.body.error?.code }).toEqual({ name, status: 503, code: 'temporal_unavailable' });
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
      expect(ms).toBeLessThan(API_TEMPORAL_CALLS.deadlineMs + 5000);
    }
    // The published document lists each of those answers for its operation.
    const document = (await http.get('/api/openapi.json').expect(200)).body as {
      paths: Record<string, Record<string, { responses: Record<string, { content: Record<string, { schema: { $ref: string } }> }> }>>;
    };
    const operations = {
      execute: ['/api/agents/{id}/execute', 'post'],
      runTask: ['/api/tasks/{id}/run', 'post'],
      createTask: ['/api/tasks', 'post'],
      serverTest: ['/api/servers/{id}/test', 'post'],
    } as const;
    for (const [name, [path, method]] of Object.entries(operations))
      expect({ name, schema: document.paths[path]?.[method]?.responses['503']?.content['application/json']?.schema.$ref }).toEqual({
        name,
        schema: '#/components/schemas/ServiceUnavailableError',
      });
    expect(health.res.status).toBe(503);
    expect(health.res.body).toMatchObject({ status: 'error', db: 'ok', temporal: 'error', errors: { temporal: expect.any(String) } });

    // The worker process rides the outage out.
    const remaining = OUTAGE_MS - (Date.now() - downAt);
    if (remaining > 0) await new Promise((r) => setTimeout(r, remaining));
    expect({ exitCode: worker!.exitCode, log: workerLog.join('').slice(-2000) }).toMatchObject({ exitCode: null });

    temporal = await startTemporal();
    const upAt = Date.now();
    // Recovery: the API's own client reconnects by itself.
    const accepted = await waitFor(
      async () => {
        const res = await http.post(`/api/agents/${agent.id}/execute`).set(auth).send({ prompt: 'after the outage' });
        return res.status === 202 ? (res.body.executionId as string) : undefined;
      },
      60_000,
      250,
    );
    const apiRecoveredMs = Date.now() - upAt;

    const ended = await Promise.all([...inFlight, accepted].map((id) => tasks.ended(id, 90_000)));
    const runsRecoveredMs = Date.now() - upAt;
    expect(ended.map((r) => r.status)).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    // Temporal timed the in-flight attempts out (their heartbeats could not reach it): the next
    // attempt followed the same MCP task, which the abandoned one left running on the host.
    expect(host.taskRequests.filter((r) => r.method === 'tasks/cancel')).toEqual([]);
    // The schedule fires again: an occurrence scheduled after the restart completes.
    await waitFor(
      async () => (await tasks.runs(task.id)).some((r) => r.status === 'COMPLETED' && Date.parse(r.scheduledFor ?? '') > upAt),
      60_000,
      250,
    );
    const scheduleRecoveredMs = Date.now() - upAt;
    process.stdout.write(
      `[temporal-outage] after the restart: execute accepted after ${apiRecoveredMs} ms, runs in flight ended after ${runsRecoveredMs} ms, schedule fired after ${scheduleRecoveredMs} ms\n`,
    );

    // No occurrence ran twice: one run per scheduled instant, one prompt on the host per run.
    await http.put(`/api/tasks/${task.id}`).set(auth).send({ enabled: false }).expect(200);
    await waitFor(async () => (await tasks.runs(task.id)).every((r) => FINAL.includes(r.status)), 60_000, 250);
    const runs = (await tasks.runs(task.id)).filter((r) => r.trigger === 'schedule');
    const instants = runs.map((r) => r.scheduledFor);
    expect(new Set(instants).size).toBe(instants.length);
    // The instants missed while Temporal was down are caught up (within the schedule's catch-up window).
    const missed = runs.filter((r) => Date.parse(r.scheduledFor ?? '') > downAt && Date.parse(r.scheduledFor ?? '') < upAt);
    expect(missed.length).toBeGreaterThan(0);
    expect(missed.every((r) => r.status === 'COMPLETED')).toBe(true);
    for (const id of [...inFlight, accepted, ...runs.filter((r) => r.status === 'COMPLETED').map((r) => r.id)])
      expect({ id, prompts: host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === id).length }).toEqual({
        id,
        prompts: 1,
      });
    expect({ exitCode: worker!.exitCode, log: workerLog.join('').slice(-2000) }).toMatchObject({ exitCode: null });
  }, 240_000);

  it('shuts a worker down cleanly on SIGTERM while Temporal is unavailable, runs in flight: exit code 0 within the shutdown deadline, no crash trace', async () => {
    // This test's worker alone takes the queue's tasks (the first test's worker is not needed any more).
    if (worker && worker.exitCode === null && worker.signalCode === null) {
      const gone = new Promise((r) => worker!.once('exit', r));
      worker.kill('SIGKILL');
      await gone;
    }
    worker = undefined;
    const log: string[] = [];
    const own = spawnWorker(ctx, temporal!.address, log, { LOG_LEVEL: 'info' });
    const output = () => log.join('');
    let stopping = false;
    try {
      await waitFor(async () => output().includes('"worker ready"') || own.exitCode !== null, 120_000, 100);
      expect(own.exitCode).toBeNull();
      const auth = { Authorization: `Bearer ${admin.accessToken}` };
      const registered = await registerHost(http, admin, { stepDelayMs: 100 });
      const ownHost = registered.host;
      try {
        const agent = await activeAgent(http, admin, registered.serverId, { maxConcurrency: 10 });
        // Runs in flight on this worker: their activities heartbeat, signal progress and will have to be let go of.
        const runs: string[] = [];
        for (const prompt of ['shutdown job [steps:100] [delay:500]', 'shutdown job [steps:100] [delay:500]']) {
          const res = await http.post(`/api/agents/${agent.id}/execute`).set(auth).send({ prompt }).expect(202);
          runs.push(res.body.executionId as string);
        }
        for (const id of runs) await ownHost.waitForCall('execute_prompt', (c) => c.args.executionId === id, 30_000);

        const pid = temporal!.pid!;
        process.kill(pid, 'SIGKILL');
        await waitFor(async () => !alive(pid), 30_000, 50);
        // The SDK notices: its polls and heartbeats fail and are retried (logged at WARN).
        const noticed = output().length;
        await waitFor(async () => /retried|Unavailable|transport error|heartbeat/i.test(output().slice(noticed)), 60_000, 100);
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
          own.once('exit', (code, signal) => resolve({ code, signal })),
        );
        const stoppedAt = Date.now();
        stopping = true;
        own.kill('SIGTERM');
        const { code, signal } = await exited;
        const tookMs = Date.now() - stoppedAt;
        process.stdout.write(`[temporal-outage] worker stopped on SIGTERM with Temporal down: code ${code} in ${tookMs} ms\n`);
        expect({ code, signal, tail: output().slice(-4000) }).toMatchObject({ code: 0, signal: null });
        // Within its deadline: the shutdown grace (WORKER_SHUTDOWN_GRACE_MS, 2 s in tests), the time
        // it tries to report to Temporal, and a margin for closing on a loaded machine.
        expect(tookMs).toBeLessThan(ctx.config.worker.shutdownGraceMs + WORKER_SHUTDOWN_REPORT_MS + 10_000);
        expect(output()).not.toMatch(/worker failed|unhandled|Channel has been shut down|panicked/i);
        // Either it stopped as usual, or it says what it could not report.
        expect(output()).toMatch(/"msg":"worker stopped( without reporting [^"]*)?"/);
      } finally {
        await ownHost.close();
      }
    } finally {
      if (!stopping || (own.exitCode === null && own.signalCode === null)) own.kill('SIGKILL');
      process.stdout.write(`[temporal-outage] shutdown worker log tail:\n${output().slice(-6000)}\n`);
      temporal = await startTemporal();
    }
  }, 300_000);
});
