import type { ActivityDeps } from './deps';

import type { DatabaseCheck } from '../workflows/contracts/system-check';

/** End-to-end proof that a worker reaches the database it was given. */
export function createSystemActivities({ orm }: ActivityDeps) {
  return {
    async checkDatabase(): Promise<DatabaseCheck> {
      const em = orm.em.fork();
      const [version] = await em.getConnection().execute<{ server_version: string }[]>('show server_version');
      const executed = await orm.getMigrator().getExecutedMigrations();
      return { serverVersion: version!.server_version, migrationsApplied: executed.length, checkedAt: new Date().toISOString() };
    },
  };
}
