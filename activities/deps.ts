import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Client } from '@temporalio/client';
import type { RunningExecutions } from './running-executions';
import type { McpClientPool } from '../lib/mcp-pool';
import type { Orm } from '../lib/orm';

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
}
