import type { Connection } from '@temporalio/client';
import type { TemporalAccess } from '../domain/temporal';
import { compose, type Composed } from '../lib/composition';
import type { Config } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { createMetricsRegistry, startMetricsServer } from '../lib/metrics';
import { initOrm, requireDatabaseUrl, type Orm } from '../lib/orm';
import { connectTemporal, createTemporalClient, temporalAddress, type TemporalCallPolicy } from '../lib/temporal';
import { ApiMetrics } from './metrics';
import { RealtimeHub } from './realtime/hub';

/**
 * A person waits behind the API's Temporal calls: a Temporal that refuses connections fails a
 * call after 4 quick tries (about 1 s), one that does not answer after 10 s; the route then
 * answers 503 temporal_unavailable. A workflow's result (a long poll) keeps no deadline.
 */
export const API_TEMPORAL_CALLS: TemporalCallPolicy = { attempts: 4, deadlineMs: 10_000 };

/** Everything the API needs, built by `createAppDeps` (the entry point, tests, benchmarks). */
export interface AppDeps {
  config: Config;
  orm: Orm;
  /** The Temporal client with the task queue runs start on (domain/temporal.ts starts them). */
  temporal: TemporalAccess & { connection: Connection };
  logger: Logger;
  /** This instance's LISTEN end of the realtime path (Socket.IO rooms and SSE streams read it). */
  events: RealtimeHub;
  /** This process's Prometheus metrics (its own registry); `metricsUrl` when served (METRICS_PORT ≠ 0). */
  metrics: ApiMetrics;
  metricsUrl?: string;
}

export interface AppDepsOptions {
  /** The logger's name (default `api`). */
  logName?: string;
}

/**
 * The API's composition root: the ORM, the Temporal connection and client, the metrics registry
 * and its /metrics listener, and the realtime hub, started (the API does not start without its first LISTEN). `close()` closes them in
 * reverse order; the HTTP server is the caller's (api/server.ts).
 */
export function createAppDeps(config: Config, options: AppDepsOptions = {}): Promise<Composed<AppDeps>> {
  return compose(async (closing) => {
    const logger = createLogger(config, options.logName ?? 'api');
    const databaseUrl = requireDatabaseUrl(config.database.url);
    const orm = await initOrm(databaseUrl, { poolMax: config.database.poolMax, logger });
    closing(() => orm.close(true));
    const connection = await connectTemporal(temporalAddress(config), API_TEMPORAL_CALLS);
    closing(() => connection.close());
    const metrics = new ApiMetrics(createMetricsRegistry());
    const metricsServer = await startMetricsServer(metrics.registry, config.metrics.api, (err) =>
      logger.warn({ err }, 'collecting metrics failed'),
    );
    if (metricsServer) closing(() => metricsServer.close());
    const events = new RealtimeHub(databaseUrl, orm, logger, metrics);
    await events.start();
    closing(() => events.close());
    return {
      config,
      orm,
      logger,
      events,
      metrics,
      metricsUrl: metricsServer?.url,
      temporal: { connection, client: createTemporalClient(connection, config), taskQueue: config.temporal.taskQueue },
    };
  });
}
