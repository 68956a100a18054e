import { randomUUID } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createAppDeps, type AppDeps } from '../api/deps';
import { startApiServer, type ApiServer } from '../api/server';
import { loadConfig } from '../lib/config';
import { RATE_LIMIT_DEFAULTS } from '../lib/request-limits';
import { startEmbeddedPostgres } from '../dev/embedded-postgres';
import { freePort } from '../dev/free-port';
import { startTemporalDevServer } from '../dev/temporal-dev-server';
import { migrateUp } from '../lib/orm';
import type { Tracing } from '../lib/tracing';
import { createWorkerDeps } from '../worker/deps';
import { createWorker } from '../worker/worker';

export interface BenchStack {
  deps: AppDeps;
  api: ApiServer;
  /** The environment the stack's config was loaded from: hand it to a worker process. */
  env: Record<string, string>;
  /** Starts a worker (the project's own factory) on the stack's task queue, with `tracing` when given; answers how to stop it. */
  startWorker(options?: { tracing?: Tracing }): Promise<() => Promise<void>>;
  /**
   * Resolves once the Temporal dev server uses less than `maxShare` of a core over a second (it
   * works through new schedules for a while after they are created), or after `timeoutMs`;
   * answers how long it waited.
   */
  temporalQuiet(maxShare?: number, timeoutMs?: number): Promise<number>;
  stop(): Promise<void>;
}

/** JSON calls to the stack's API; a status of 300 or more throws with the answer. */
export function apiCaller(base: string) {
  return async (method: string, url: string, body?: unknown, token?: string): Promise<Record<string, unknown>> => {
    const res = await fetch(`${base}${url}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
    if (res.status >= 300) throw new Error(`${method} ${url} → ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

/** A new organisation and its ADMIN, registered through the API as `email`; the register answer. */
export async function registerBenchAccount(
  call: ReturnType<typeof apiCaller>,
  email: string,
  organizationName = 'Bench',
): Promise<{ accessToken: string; user: { id: string }; organization: { id: string } }> {
  return (await call('POST', '/api/auth/register', { email, password: 'bench password 123', name: 'Bench', organizationName })) as {
    accessToken: string;
    user: { id: string };
    organization: { id: string };
  };
}

/** An agent on `serverId`, created and validated through the API (ACTIVE once this resolves); its id. */
export async function validatedAgent(
  call: ReturnType<typeof apiCaller>,
  token: string,
  serverId: string,
  fields: { name?: string; maxConcurrency?: number } = {},
): Promise<string> {
  const created = (await call('POST', '/api/agents', { serverId, name: `a-${randomUUID().slice(0, 8)}`, ...fields }, token)) as {
    id: string;
  };
  await call('POST', `/api/agents/${created.id}/validate`, undefined, token);
  return created.id;
}

/** The real system on free ports in a temp dir: embedded PostgreSQL, Temporal dev server, API. */
export async function startBenchStack(
  overrides: Record<string, string> = {},
  options: { postgresSettings?: Record<string, string> } = {},
): Promise<BenchStack> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-bench-'));
  const [pgPort, temporalPort] = await Promise.all([freePort(), freePort()]);
  const [pg, temporal] = await Promise.all([
    startEmbeddedPostgres({
      dataDir: path.join(dir, 'pg'),
      port: pgPort,
      database: 'bench',
      runtimeDir: process.env.EMBEDDED_POSTGRES_RUNTIME_DIR,
      settings: options.postgresSettings,
    }),
    startTemporalDevServer({ port: temporalPort, namespace: 'default' }),
  ]);
  const env: Record<string, string> = {
    NODE_ENV: 'test',
    DATA_DIR: dir,
    DATABASE_URL: pg.url,
    TEMPORAL_ADDRESS: temporal.address,
    JWT_ACCESS_SECRET: randomBytes(32).toString('base64url'),
    JWT_REFRESH_SECRET: randomBytes(32).toString('base64url'),
    ENCRYPTION_KEYS: `bench:${randomBytes(32).toString('base64')}`,
    LOG_LEVEL: 'silent',
    BCRYPT_COST: '4',
    // The benchmarks start hundreds of runs from one user and one address: limits ×1000 (still
    // counted, so their cost is in the numbers).
    RATE_LIMITS: Object.entries(RATE_LIMIT_DEFAULTS)
      .map(([rule, { limit, windowSeconds }]) => `${rule}=${limit * 1000}/${windowSeconds}`)
      .join(','),
    // The fire-latency benchmark runs a one-second schedule, and the scale one 1,000 recurring
    // tasks in one organisation beside it: above the default limits on recurring tasks.
    TASK_MIN_INTERVAL_SECONDS: '1',
    TASK_MAX_RECURRING: '100000',
    ...overrides,
  };
  const config = loadConfig(env);
  const app = await createAppDeps(config, { logName: 'bench' });
  const { deps } = app;
  await migrateUp(deps.orm);
  const api = await startApiServer(deps, 0, '127.0.0.1');
  let stopWorker = async () => undefined as void;
  return {
    deps,
    api,
    env,
    async startWorker(options = {}) {
      const { deps: workerDeps, close } = await createWorkerDeps(config, {
        orm: deps.orm,
        logger: deps.logger,
        temporalClient: deps.temporal.client,
        tracing: options.tracing,
      });
      const worker = await createWorker(workerDeps);
      const runPromise = worker.run();
      stopWorker = async () => {
        if (worker.getState() === 'RUNNING') worker.shutdown();
        await runPromise;
        await close();
      };
      return stopWorker;
    },
    async temporalQuiet(maxShare = 0.15, timeoutMs = 120_000) {
      const began = Date.now();
      const pid = temporal.pid;
      if (pid === undefined) return 0;
      // utime + stime, in clock ticks (100 per second on Linux).
      const cpuTicks = () =>
        readFileSync(`/proc/${pid}/stat`, 'utf8')
          .split(') ')[1]!
          .split(' ')
          .slice(11, 13)
          .reduce((sum, v) => sum + Number(v), 0);
      for (let before = cpuTicks(); Date.now() - began < timeoutMs;) {
        await new Promise((r) => setTimeout(r, 1000));
        const after = cpuTicks();
        if ((after - before) / 100 < maxShare) break;
        before = after;
      }
      return Date.now() - began;
    },
    async stop() {
      try {
        await stopWorker();
        await api.close();
        await app.close();
      } finally {
        // Whatever failed above, the servers go: a Temporal dev server left behind would weigh on every later measurement.
        await Promise.allSettled([temporal.stop(), pg.remove()]);
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
