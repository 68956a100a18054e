import type { Connection } from '@temporalio/client';
import type { TemporalAccess } from '../domain/temporal';
import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';
import type { RealtimeHub } from './realtime/hub';

/** Everything the API needs, built by the process entry (api/main.ts) or by tests. */
export interface AppDeps {
  config: Config;
  orm: Orm;
  /** The Temporal client with the task queue runs start on (domain/temporal.ts starts them). */
  temporal: TemporalAccess & { connection: Connection };
  logger: Logger;
  /** This instance's LISTEN end of the realtime path (Socket.IO rooms and SSE streams read it). */
  events: RealtimeHub;
}
