/**
 * Prometheus metrics of the API and the worker against the real stack: each served on a port
 * of its own (never the API's), in a format a Prometheus parser reads; counters and
 * histograms move by exactly what a request, a run, a failed run, a refused login and a
 * rate-limited request did; the fleet gauges are the database's numbers, the same from every
 * worker; port 0 serves nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Execution, ExecutionStatus, ExecutionTrigger } from '../entities';
import { HostMetrics } from '../host/metrics';
import type { AgentHost } from '../host/server';
import { ConfigError, loadConfig } from '../lib/config';
import { createMetricsRegistry, startMetricsServer, type MetricsServer } from '../lib/metrics';
import { httpFor, PASSWORD, randomIp, registerAccount, type Account, type Http } from './api';
import { makeAgent, makeOrganization, makeServer } from './factories';
import { hostWithAgent, waitFor } from './fleet';
import { createTestContext, relaxedRateLimits, startTestWorker, type TestContext } from './harness';
import { freePortPair, scrape, type Scrape } from './metrics';

describe('Prometheus metrics', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let agentId: string;
  let hostMetrics!: MetricsServer;
  const hosts: AgentHost[] = [];
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  beforeAll(async () => {
    const base = loadConfig();
    const [apiPort, workerPort] = [await freePortPair(), await freePortPair()];
    ctx = await createTestContext({
      metrics: { api: { host: '127.0.0.1', port: apiPort }, worker: { host: '127.0.0.1', port: workerPort, temporalPort: 0 } },
      rateLimits: { ...relaxedRateLimits(base.rateLimits), 'logout.ip': { limit: 1, windowSeconds: 3600 } },
    });
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Metrics Org');
    worker = await startTestWorker(ctx);
    const metrics = new HostMetrics(createMetricsRegistry());
    hostMetrics = (await startMetricsServer(metrics.registry, { host: '127.0.0.1', port: await freePortPair() }, () => undefined))!;
    ({
      agent: { id: agentId },
    } = await hostWithAgent(http, admin, hosts, { metrics }));
  });
  afterAll(async () => {
    await hostMetrics?.close();
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  const apiScrape = () => scrape(ctx.metricsUrl!);
  const workerMetricsUrl = () => `http://127.0.0.1:${ctx.config.metrics.worker.port}/metrics`;
  const workerScrape = () => scrape(workerMetricsUrl());

  it('serves /metrics on its own loopback port, not on the API, with default process metrics and parseable text', async () => {
    expect(ctx.metricsUrl).toBe(`http://127.0.0.1:${ctx.config.metrics.api.port}/metrics`);
    await http.get('/metrics').expect(404);
    for (const s of [await apiScrape(), await workerScrape()]) {
      for (const name of [
        'process_cpu_user_seconds_total',
        'nodejs_eventloop_lag_seconds',
        'nodejs_heap_size_used_bytes',
        'nodejs_gc_duration_seconds',
      ])
        expect(s.family(name)).toBeDefined();
      // Every family of ours follows the conventions: prefix, _total counters, _seconds histograms.
      for (const family of s.families.filter((f) => f.name.startsWith('mcp_fleet_'))) {
        if (family.type === 'COUNTER') expect(family.name).toMatch(/_total$/);
        if (family.type === 'HISTOGRAM') expect(family.name).toMatch(/_seconds$/);
      }
    }
    const api = await apiScrape();
    expect(
      api
        .series('mcp_fleet_realtime_connections')
        .map((labels) => labels.kind)
        .sort(),
    ).toEqual(['socket', 'sse']);
    const other = await fetch(ctx.metricsUrl!.replace('/metrics', '/other'));
    expect(other.status).toBe(404);
  });

  it('times requests by route template and status, never by path', async () => {
    const route = { method: 'GET', route: '/api/agents/:id', status: '404' };
    const before = await apiScrape();
    await http.get(`/api/agents/${randomUUID()}`).set(as()).expect(404);
    await http.get(`/api/agents/${randomUUID()}`).set(as()).expect(404);
    await http.get(`/nothing/here/${randomUUID()}`).expect(404);
    const after = await apiScrape();
    expect(
      after.count('mcp_fleet_http_request_duration_seconds', route) - before.count('mcp_fleet_http_request_duration_seconds', route),
    ).toBe(2);
    expect(
      after.count('mcp_fleet_http_request_duration_seconds', { route: 'unmatched', status: '404' }) -
        before.count('mcp_fleet_http_request_duration_seconds', { route: 'unmatched', status: '404' }),
    ).toBe(1);
    expect(after.text).not.toMatch(/nothing\/here|[0-9a-f]{8}-[0-9a-f]{4}-/);
  });

  it('counts a rate-limited request by its rule and a refused login', async () => {
    const ip = randomIp();
    const before = await apiScrape();
    await http.post('/api/auth/logout').set('X-Forwarded-For', ip).send({ refreshToken: 'x' });
    await http.post('/api/auth/logout').set('X-Forwarded-For', ip).send({ refreshToken: 'x' }).expect(429);
    await http
      .post('/api/auth/login')
      .set('X-Forwarded-For', randomIp())
      .send({ email: admin.email, password: `${PASSWORD}!` })
      .expect(401);
    await http.post('/api/auth/login').set('X-Forwarded-For', randomIp()).send({ email: admin.email, password: PASSWORD }).expect(200);
    const after = await apiScrape();
    const rule = { rule: 'logout.ip' };
    expect(after.value('mcp_fleet_rate_limited_total', rule) - before.value('mcp_fleet_rate_limited_total', rule)).toBe(1);
    expect(after.value('mcp_fleet_login_failures_total') - before.value('mcp_fleet_login_failures_total')).toBe(1);
  });

  it('counts a completed and a failed run, their durations and their MCP calls', async () => {
    const started = { kind: 'agent' };
    const completed = { kind: 'agent', status: 'COMPLETED' };
    const failed = { kind: 'agent', status: 'FAILED' };
    const prompt = { tool: 'execute_prompt', outcome: 'ok' };
    // A run that takes its slot at once starts in the API; one that queued starts in the worker.
    const startedIn = async () => (await apiScrape()).value('mcp_fleet_runs_started_total', started);
    const [before, apiBefore, hostBefore] = [await workerScrape(), await startedIn(), await scrape(hostMetrics.url)];
    const delta = (s: Scrape, api: number) => ({
      started: s.value('mcp_fleet_runs_started_total', started) - before.value('mcp_fleet_runs_started_total', started) + api - apiBefore,
      completed: s.value('mcp_fleet_runs_finished_total', completed) - before.value('mcp_fleet_runs_finished_total', completed),
      failed: s.value('mcp_fleet_runs_finished_total', failed) - before.value('mcp_fleet_runs_finished_total', failed),
      completedTimed: s.count('mcp_fleet_run_duration_seconds', completed) - before.count('mcp_fleet_run_duration_seconds', completed),
      failedTimed: s.count('mcp_fleet_run_duration_seconds', failed) - before.count('mcp_fleet_run_duration_seconds', failed),
      promptCalls: s.count('mcp_fleet_mcp_call_duration_seconds', prompt) - before.count('mcp_fleet_mcp_call_duration_seconds', prompt),
    });
    for (const text of ['hello there', 'broken [fail]'])
      await http.post(`/api/agents/${agentId}/execute`).set(as()).send({ prompt: text }).expect(202);
    const expected = { started: 2, completed: 1, failed: 1, completedTimed: 1, failedTimed: 1, promptCalls: 2 };
    let last: ReturnType<typeof delta> | undefined;
    const moved = await waitFor(
      async () => {
        const d = (last = delta(await workerScrape(), await startedIn()));
        return d.completed + d.failed >= 2 && d.promptCalls >= 2 ? d : undefined;
      },
      60_000,
      100,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; moved so far: ${JSON.stringify(last)}`);
    });
    expect(moved).toEqual(expected);
    // The host counted the same two runs by engine and outcome, and none is left in progress.
    const host = await scrape(hostMetrics.url);
    for (const outcome of ['ok', 'error'])
      expect(
        host.value('mcp_fleet_host_runs_total', { engine: 'script', outcome }) -
          hostBefore.value('mcp_fleet_host_runs_total', { engine: 'script', outcome }),
      ).toBe(1);
    expect(host.value('mcp_fleet_host_runs_in_progress', { engine: 'script' })).toBe(0);
    const after = await workerScrape();
    // The tool label is bounded: the contract's tool names, else `other`.
    const tools = new Set(after.series('mcp_fleet_mcp_call_duration_seconds').map((labels) => labels.tool));
    for (const tool of tools)
      expect([
        'execute_prompt',
        'provision_agent',
        'activate_agent',
        'deactivate_agent',
        'install_tool',
        'uninstall_tool',
        'check_tool',
        'other',
      ]).toContain(tool);
    expect(
      after.value('mcp_fleet_mcp_connections', { state: 'idle' }) + after.value('mcp_fleet_mcp_connections', { state: 'busy' }),
    ).toBeGreaterThanOrEqual(1);
  });

  it("reads the fleet gauges from the database, the same from every worker's /metrics", async () => {
    const em = ctx.orm.em.fork();
    const organization = makeOrganization(em);
    const agent = makeAgent(em, makeServer(em, organization));
    for (const status of [ExecutionStatus.QUEUED, ExecutionStatus.QUEUED, ExecutionStatus.WAITING_INPUT])
      em.create(Execution, { organization, agent, trigger: ExecutionTrigger.API, status, prompt: 'gauge' });
    await em.flush();
    const second = await createTestContext({
      metrics: { api: { host: '127.0.0.1', port: 0 }, worker: { host: '127.0.0.1', port: await freePortPair(), temporalPort: 0 } },
    });
    const secondWorker = await startTestWorker(second);
    try {
      const count = async (status: string) =>
        Number(
          (await ctx.orm.em.getConnection().execute<{ n: string }[]>('select count(*) as n from executions where status = ?', [status]))[0]!
            .n,
        );
      // Other test files change the table meanwhile: compare once the count holds still around both scrapes.
      const seen = await waitFor(
        async () => {
          const [queued, waiting] = [await count('QUEUED'), await count('WAITING_INPUT')];
          const scrapes = [await workerScrape(), await scrape(`http://127.0.0.1:${second.config.metrics.worker.port}/metrics`)];
          if (queued !== (await count('QUEUED')) || waiting !== (await count('WAITING_INPUT'))) return undefined;
          return {
            queued,
            waiting,
            reported: scrapes.map((s) => [s.value('mcp_fleet_runs_queued'), s.value('mcp_fleet_runs_waiting_input')]),
          };
        },
        30_000,
        100,
      );
      expect(seen.queued).toBeGreaterThanOrEqual(2);
      expect(seen.waiting).toBeGreaterThanOrEqual(1);
      expect(seen.reported).toEqual([
        [seen.queued, seen.waiting],
        [seen.queued, seen.waiting],
      ]);
    } finally {
      await em.nativeDelete(Execution, { organization });
      await secondWorker.stop();
      await second.close();
    }
  });

  it('serves nothing when the port is 0, and never on the API port', async () => {
    // The suite's default (test/global-setup.ts): METRICS_PORT=0, WORKER_METRICS_PORT=0.
    const off = await createTestContext();
    try {
      expect(off.metricsUrl).toBeUndefined();
    } finally {
      await off.close();
    }
    expect(() => loadConfig({ ...process.env, PORT: '9464', METRICS_PORT: '9464' })).toThrow(ConfigError);
    expect(
      loadConfig({ ...process.env, METRICS_PORT: undefined, WORKER_METRICS_PORT: undefined, WORKER_TEMPORAL_METRICS_PORT: undefined })
        .metrics,
    ).toEqual({
      api: { host: '127.0.0.1', port: 9464 },
      worker: { host: '127.0.0.1', port: 9465, temporalPort: 9467 },
    });
  });
});

describe('the worker process', () => {
  let ctx: TestContext;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await ctx?.close();
  });

  it("serves its /metrics on WORKER_METRICS_PORT and the Temporal SDK's worker metrics on WORKER_TEMPORAL_METRICS_PORT", async () => {
    const port = await freePortPair();
    child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'worker', 'main.ts')], {
      cwd: path.join(__dirname, '..'),
      env: {
        ...process.env,
        TEMPORAL_TASK_QUEUE: ctx.config.temporal.taskQueue,
        WORKER_METRICS_PORT: String(port),
        WORKER_TEMPORAL_METRICS_PORT: String(port + 1),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const own = await waitFor(() => scrape(`http://127.0.0.1:${port}/metrics`).catch(() => undefined), 60_000, 200).catch(() => {
      throw new Error(`the worker's /metrics never answered; its stderr: ${stderr}`);
    });
    expect(own.family('mcp_fleet_runs_queued')).toBeDefined();
    expect(own.family('nodejs_heap_size_used_bytes')).toBeDefined();
    // The SDK reports its task slots and pollers once the worker runs (poll latency after the first long poll ends, the sticky cache after a workflow task).
    const sdk = await waitFor(
      async () => {
        const s = await scrape(`http://127.0.0.1:${port + 1}/metrics`).catch(() => undefined);
        return s?.family('temporal_worker_task_slots_available') && s.family('temporal_num_pollers') ? s : undefined;
      },
      60_000,
      200,
    ).catch(async () => {
      const text = await fetch(`http://127.0.0.1:${port + 1}/metrics`).then((r) => r.text(), String);
      throw new Error(`the SDK's metrics never had slots and pollers: ${text.slice(0, 3000)}; stderr: ${stderr}`);
    });
    expect(sdk.series('temporal_worker_task_slots_available').map((l) => l.task_queue)).toContain(ctx.config.temporal.taskQueue);
  }, 120_000);
});
