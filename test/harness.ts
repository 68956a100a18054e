import { randomUUID } from 'node:crypto';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type { AppDeps } from '../api/deps';
import { loadConfig, type Config, type RateLimits } from '../lib/config';
import { createLogger } from '../lib/logger';
import { RealtimeHub } from '../api/realtime/hub';
import { McpClientPool } from '../lib/mcp-client';
import { RunningExecutions } from '../activities/running-executions';
import { listenForControl } from '../worker/cancel-listener';
import { initOrm } from '../lib/orm';
import { connectTemporal, createTemporalClient } from '../lib/temporal';
import { installTemporalRuntime } from '../worker/runtime';
import { createWorker } from '../worker/worker';

export interface TestContext extends AppDeps {
  close(): Promise<void>;
}

/**
 * Every request limit ×1000: the test files share one PostgreSQL, most requests come from
 * 127.0.0.1, and some tests start hundreds of runs. Tests of the limits pass their own.
 */
export function relaxedRateLimits(limits: RateLimits): RateLimits {
  return Object.fromEntries(Object.entries(limits).map(([rule, limit]) => [rule, limit && { ...limit, limit: limit.limit * 1000 }])) as RateLimits;
}

/** Real deps against the run's PostgreSQL and Temporal (see global-setup.ts). */
export async function createTestContext(overrides: Partial<Config> = {}): Promise<TestContext> {
  const base = loadConfig();
  // A task queue of its own, so parallel test files never run each other's workflows.
  const config = { ...base, temporal: { ...base.temporal, taskQueue: `test-${randomUUID()}` }, rateLimits: relaxedRateLimits(base.rateLimits), ...overrides };
  const logger = createLogger(config, 'test');
  const orm = await initOrm(config.database.url!, { poolMax: 5 });
  const connection = await connectTemporal(config.temporal.address!);
  const client = createTemporalClient(connection, config);
  const events = new RealtimeHub(config.database.url!, orm, logger);
  await events.start();
  return {
    config,
    orm,
    logger,
    events,
    temporal: { connection, client, taskQueue: config.temporal.taskQueue },
    async close() {
      await events.close();
      await connection.close();
      await orm.close(true);
    },
  };
}

/** A worker built by the project's own factory, polling the context's own task queue. */
export async function startTestWorker(ctx: TestContext, mcp?: McpClientPool): Promise<{ worker: Worker; taskQueue: string; stop(): Promise<void> }> {
  const config = ctx.config;
  const taskQueue = config.temporal.taskQueue;
  installTemporalRuntime(ctx.logger);
  const connection = await NativeConnection.connect({ address: config.temporal.address! });
  const pool = mcp ?? new McpClientPool({ timeoutMs: config.mcp.timeoutMs, logger: ctx.logger });
  const running = new RunningExecutions();
  const control = listenForControl(config.database.url!, running, ctx.logger);
  const worker = await createWorker({ config, orm: ctx.orm, logger: ctx.logger, connection, mcp: pool, running, temporalClient: ctx.temporal.client });
  const runPromise = worker.run();
  return {
    worker,
    taskQueue,
    async stop() {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await runPromise;
      if (!mcp) await pool.closeAll();
      await control.close();
      await connection.close();
    },
  };
}
