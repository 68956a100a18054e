import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { Worker } from '@temporalio/worker';
import { createAppDeps, type AppDeps } from '../api/deps';
import { loadConfig, type Config } from '../lib/config';
import type { RateLimits } from '../lib/request-limits';
import type { McpClientPool } from '../lib/mcp-pool';
import type { Tracing } from '../lib/tracing';
import { createWorkerDeps } from '../worker/deps';
import type { WorkerMetrics } from '../worker/metrics';
import type { WebhookOutboxScope } from '../worker/webhook-outbox';
import { createWorker } from '../worker/worker';

export interface TestContext extends AppDeps {
  close(): Promise<void>;
}

/**
 * Every request limit ×1000: the test files share one PostgreSQL, most requests come from
 * 127.0.0.1, and some tests start hundreds of runs. Tests of the limits pass their own.
 */
export function relaxedRateLimits(limits: RateLimits): RateLimits {
  return Object.fromEntries(
    Object.entries(limits).map(([rule, limit]) => [rule, limit && { ...limit, limit: limit.limit * 1000 }]),
  ) as RateLimits;
}

/** Real deps against the run's PostgreSQL and Temporal (see global-setup.ts), built by the API's own composition root. */
export async function createTestContext(overrides: Partial<Config> = {}): Promise<TestContext> {
  const base = loadConfig();
  const config: Config = {
    ...base,
    // A task queue of its own, so parallel test files never run each other's workflows.
    temporal: { ...base.temporal, taskQueue: `test-${randomUUID()}` },
    rateLimits: relaxedRateLimits(base.rateLimits),
    // Many contexts share one PostgreSQL.
    database: { ...base.database, poolMax: 5 },
    ...overrides,
  };
  const { deps, close } = await createAppDeps(config, { logName: 'test' });
  return { ...deps, close };
}

/**
 * A worker built by the worker's own composition root and factory, polling the context's own
 * task queue; it shares the context's ORM, logger and Temporal client, and uses `mcp` when given.
 */
export async function startTestWorker(
  ctx: TestContext,
  mcp?: McpClientPool,
  options: { tracing?: Tracing; webhookOutbox?: WebhookOutboxScope; worker?: Partial<Config['worker']> } = {},
): Promise<{ worker: Worker; taskQueue: string; metrics: WorkerMetrics; stop(): Promise<void> }> {
  const config = options.worker ? { ...ctx.config, worker: { ...ctx.config.worker, ...options.worker } } : ctx.config;
  const { deps, close } = await createWorkerDeps(config, {
    orm: ctx.orm,
    logger: ctx.logger,
    temporalClient: ctx.temporal.client,
    mcp,
    tracing: options.tracing,
    // Test files share one database, each with a task queue of its own: a worker starts webhook
    // deliveries only of the organisations its file names, never another file's.
    webhookOutbox: options.webhookOutbox ?? false,
  });
  const worker = await createWorker(deps).catch(async (error: unknown) => {
    await close();
    throw error;
  });
  const runPromise = worker.run();
  return {
    worker,
    taskQueue: ctx.config.temporal.taskQueue,
    metrics: deps.metrics,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await runPromise;
      await close();
    },
  };
}

/**
 * The real worker entry point in its own process on the context's task queue, so a test can kill
 * it with SIGKILL; `env` adds to its environment (a database of the test's own).
 */
export function spawnWorkerProcess(ctx: TestContext, env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'worker', 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: {
      ...process.env,
      TEMPORAL_TASK_QUEUE: ctx.config.temporal.taskQueue,
      LOG_LEVEL: 'warn',
      LOG_PRETTY: 'false',
      // Test files share one database: a worker this test may kill starts no other file's webhook deliveries.
      WEBHOOK_OUTBOX: 'off',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}
