import type { Client, Connection } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';

/** Everything the API needs, built by the process entry (api/main.ts) or by tests. */
export interface AppDeps {
  config: Config;
  orm: Orm;
  temporal: { connection: Connection; client: Client };
  logger: Logger;
}
