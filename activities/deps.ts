import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { McpClientPool } from '../lib/mcp-client';
import type { Orm } from '../lib/orm';

/** What activities may use; built by the worker entry (or by tests). Activities fork `orm.em` per call. */
export interface ActivityDeps {
  config: Config;
  orm: Orm;
  logger: Logger;
  /** Pooled MCP connections, one per server; activities are the only MCP callers. */
  mcp: McpClientPool;
}
