import type { Client } from '@temporalio/client';
import { NativeConnection, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { ActivityDeps } from '../activities';
import { RunningExecutions } from '../activities/running-executions';
import { compose, type Composed } from '../lib/composition';
import type { Config } from '../lib/config';
import { createLogger, type Logger } from '../lib/logger';
import { createMetricsRegistry, startMetricsServer } from '../lib/metrics';
import { McpClientPool } from '../lib/mcp-pool';
import { policyLookup } from '../lib/ssrf';
import { urlPolicy } from '../lib/url-policy';
import { initOrm, requireDatabaseUrl, type Orm } from '../lib/orm';
import { TRACING_OFF, type Tracing } from '../lib/tracing';
import { connectTemporal, createTemporalClient, temporalAddress } from '../lib/temporal';
import { listenForControl } from './cancel-listener';
import { WorkerMetrics } from './metrics';
import { installTemporalRuntime } from './runtime';
import { runWebhookOutbox, type WebhookOutboxScope } from './webhook-outbox';

/** Everything a worker needs, built by `createWorkerDeps`; `createWorker` takes nothing less. */
export interface WorkerDeps extends ActivityDeps {
  /** The worker's own native connection (the activities' client has another one). */
  connection: NativeConnection;
  /** A bundle built once (tests) or its file path (production); otherwise see worker.ts. */
  workflowBundle?: WorkflowBundleWithSourceMap | { codePath: string };
  /** What startTracing (lib/tracing.ts) registered: the worker exports its workflow spans through it. */
  tracing: Tracing;
  /** This process's Prometheus metrics (its own registry); `metricsUrl` when served (WORKER_METRICS_PORT ≠ 0). */
  metrics: WorkerMetrics;
  metricsUrl?: string;
}

/**
 * Parts a caller already has and keeps: a test or a benchmark runs its worker beside its API
 * and shares that API's ORM, logger and Temporal client, or hands in its own MCP pool. What is
 * given here is the caller's to close; everything else is opened and closed by the root.
 */
export interface WorkerDepsOptions {
  logger?: Logger;
  orm?: Orm;
  temporalClient?: Client;
  mcp?: McpClientPool;
  /** The process's tracing (worker/main.ts or a test starts it); off when not given. */
  tracing?: Tracing;
  /** The webhook outbox (worker/webhook-outbox.ts): false runs none, a scope limits its rows; default every row. */
  webhookOutbox?: false | WebhookOutboxScope;
}

/**
 * The worker's composition root: the Temporal runtime (before the first native connection),
 * the ORM, the worker's native connection, a client connection (schedule, progress signals),
 * the MCP client pool, the running-executions registry fed by the `fleet_control` LISTEN
 * (listening before this resolves), and the metrics registry with its /metrics listener. `close()` closes them in reverse order.
 */
export function createWorkerDeps(config: Config, options: WorkerDepsOptions = {}): Promise<Composed<WorkerDeps>> {
  return compose(async (closing) => {
    const logger = options.logger ?? createLogger(config, 'worker');
    installTemporalRuntime(logger, config.metrics.worker);
    const databaseUrl = requireDatabaseUrl(config.database.url);
    const orm = options.orm ?? (await initOrm(databaseUrl, { poolMax: config.database.poolMax, logger }));
    if (!options.orm) closing(() => orm.close(true));
    const connection = await NativeConnection.connect({ address: temporalAddress(config) });
    closing(() => connection.close());
    const temporalClient = options.temporalClient ?? (await ownClient(config, closing));
    // Sockets resolve names through the URL policy: a name that changed to a forbidden address after its check is refused at the connection.
    const metrics = new WorkerMetrics(createMetricsRegistry(), orm);
    const mcp =
      options.mcp ??
      new McpClientPool({
        timeoutMs: config.mcp.timeoutMs,
        logger,
        lookup: policyLookup(urlPolicy(config)),
        onToolCall: metrics.observeMcpCall,
      });
    if (!options.mcp) closing(() => mcp.closeAll());
    metrics.watchPool(mcp);
    const running = new RunningExecutions();
    const control = await listenForControl(databaseUrl, running, logger);
    closing(() => control.close());
    const outboxScope = options.webhookOutbox ?? (config.webhooks.outbox ? {} : false);
    if (outboxScope !== false) {
      const outbox = await runWebhookOutbox({ orm, temporalClient, config, logger }, databaseUrl, outboxScope);
      closing(() => outbox.close());
    }
    const metricsServer = await startMetricsServer(metrics.registry, config.metrics.worker, (err) =>
      logger.warn({ err }, 'collecting metrics failed'),
    );
    if (metricsServer) closing(() => metricsServer.close());
    return {
      config,
      orm,
      logger,
      connection,
      temporalClient,
      mcp,
      running,
      metrics,
      metricsUrl: metricsServer?.url,
      tracing: options.tracing ?? TRACING_OFF,
    };
  });
}

async function ownClient(config: Config, closing: (closer: () => unknown) => void): Promise<Client> {
  const connection = await connectTemporal(temporalAddress(config));
  closing(() => connection.close());
  return createTemporalClient(connection, config);
}
