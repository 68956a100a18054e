import type { Config } from '../lib/config';
import type { Logger } from '../lib/logger';
import type { Orm } from '../lib/orm';

/** What activities may use; built by the worker entry (or by tests). Activities fork `orm.em` per call. */
export interface ActivityDeps {
  config: Config;
  orm: Orm;
  logger: Logger;
}
