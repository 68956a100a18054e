import { AppError } from '../../domain/errors';

/**
 * How long a client is asked to wait: PostgreSQL coming back from a restart is seen within the
 * pool's next try, and a client that retries sooner only adds load to an API that cannot help.
 */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/**
 * What a request that needed PostgreSQL while it could not be reached (`isDatabaseUnavailable`,
 * lib/database-unavailable.ts: refused, restarting, the pool waited past its acquire timeout)
 * answers: the service's trouble, and it passes, so a 503 `database_unavailable` with
 * Retry-After, never a 500 (docs/operations.md, "PostgreSQL unavailable").
 */
export function databaseUnavailable(): AppError {
  return new AppError(503, 'database_unavailable', 'The database is unavailable; try again shortly', undefined, {
    'Retry-After': String(DATABASE_RETRY_AFTER_SECONDS),
  });
}
