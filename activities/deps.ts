import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Client } from '@temporalio/client';
import type { RunningExecutions } from './running-executions';
import type { McpClientPool } from '../lib/mcp-pool';
import type { Orm } from '../lib/orm';

/** How one webhook attempt ended: taken (2xx), failed with another attempt scheduled, or failed for good. */
export type WebhookAttemptCount = 'delivered' | 'retry' | 'failed';

/** What activities report to the process's metrics (worker/metrics.ts implements it); absent in tests that do not look. */
export interface ActivityMetrics {
  countWebhookAttempt(outcome: WebhookAttemptCount): void;
}

/** What activities may use; built by the worker entry (or by tests). Activities fork `orm.em` per call. */
export interface ActivityDeps {
  config: Config;
  orm: Orm;
  logger: Logger;
  /** Pooled MCP connections, one per server; activities are the only MCP callers. */
  mcp: McpClientPool;
  /** Executions running in this process, so a cancel request can abort them at once. */
  running: RunningExecutions;
  /** For progress signals from a running activity to its own workflow. */
  temporalClient: Client;
  metrics?: ActivityMetrics;
}
