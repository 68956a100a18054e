import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import type { TemporalAccess } from '../temporal';

/** What the run lifecycle needs: the database, the Temporal client and a logger. */
export interface RunDeps {
  orm: Orm;
  temporal: TemporalAccess;
  logger: Logger;
}
