import type { Client, Connection } from '@temporalio/client';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';
import type { RealtimeHub } from './realtime/hub';

/** Everything the API needs, built by the process entry (api/main.ts) or by tests. */
export interface AppDeps {
  config: Config;
  orm: Orm;
  temporal: { connection: Connection; client: Client };
  logger: Logger;
  /** This instance's LISTEN end of the realtime path (Socket.IO rooms and SSE streams read it). */
  events: RealtimeHub;
}
