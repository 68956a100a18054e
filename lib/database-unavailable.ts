/**
 * Whether a database failure means "PostgreSQL cannot be reached right now" (stopped,
 * restarting, failing over, out of connections, or the pool waited too long), as opposed to a
 * statement that is wrong. The API answers those 503 (api/middleware/database-unavailable.ts),
 * and writers that must not lose what they write wait for the database to come back
 * (`retryWhileDatabaseUnavailable`). What MikroORM, knex and pg throw for each case is listed
 * in docs/operations.md ("PostgreSQL unavailable").
 */

/** Socket errors of a connection that could not be made or was cut. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server going away or refusing for now: admin_shutdown (a stop ended the
 * session), crash_shutdown, cannot_connect_now (starting up or shutting down),
 * too_many_connections, and the connection exceptions of class 08, but not 08P01
 * (protocol_violation: what PostgreSQL answers to a NUL in a string, the client's fault).
 */
const SERVER_CODES = new Set(['57P01', '57P02', '57P03', '53300', '08000', '08001', '08003', '08004', '08006', '08007']);

/**
 * pg's own sentences for a connection lost or never made, which carry no code. knex and
 * MikroORM put the statement before them (`<sql> - <sentence>`), so they are matched at the end.
 */
const LOST_CONNECTION = [
  'Connection terminated unexpectedly',
  'Connection terminated',
  'Connection terminated due to connection timeout',
  'Client has encountered a connection error and is not queryable',
  'Client was closed and is not queryable',
  'timeout expired',
];

const POOL_TIMEOUT = 'Knex: Timeout acquiring a connection';

function oneUnavailable(error: object): boolean {
  const { code, name, message } = error as { code?: unknown; name?: unknown; message?: unknown };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || SERVER_CODES.has(code))) return true;
  // knex: no pooled connection became free within the pool's acquire timeout (lib/orm.ts).
  // MikroORM wraps it in a DriverException named after itself, keeping the message.
  if (name === 'KnexTimeoutError') return true;
  if (typeof message !== 'string') return false;
  if (message.startsWith(POOL_TIMEOUT)) return true;
  return LOST_CONNECTION.some((sentence) => message === sentence || message.endsWith(` - ${sentence}`));
}

export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    if (oneUnavailable(current)) return true;
    // Node reports a refused connection to every address of a name as one AggregateError.
    if (current instanceof AggregateError && current.errors.some((e) => typeof e === 'object' && e !== null && oneUnavailable(e)))
      return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * How long a writer that must not lose what it writes (a run's event log, its final output)
 * waits for PostgreSQL: a restart or a managed failover takes well under this. After it, the
 * write fails as it would have at once, and its caller's own failure path takes over. The
 * worker's runs take theirs from DATABASE_OUTAGE_GRACE_MS (lib/config.ts), this by default.
 */
export const DATABASE_OUTAGE_GRACE_MS = 120_000;

const FIRST_WAIT_MS = 200;
/** The longest pause between two tries: the write goes through within about this much of the database's return. */
const MAX_WAIT_MS = 2000;

/**
 * Runs `write`, and again after a pause (200 ms doubling to 2 s) whenever it fails because the
 * database is unavailable, until `graceMs` have passed. Any other failure is thrown at once, and
 * so is the signal's reason once it aborts (a cancelled run stops waiting).
 * `write` must be safe to run again after a failure that may have happened after its commit.
 */
export async function retryWhileDatabaseUnavailable<T>(
  write: () => Promise<T>,
  graceMs = DATABASE_OUTAGE_GRACE_MS,
  signal?: AbortSignal,
): Promise<T> {
  const giveUpAt = Date.now() + graceMs;
  for (let waitMs = FIRST_WAIT_MS; ; waitMs = Math.min(waitMs * 2, MAX_WAIT_MS)) {
    try {
      return await write();
    } catch (error) {
      if (!isDatabaseUnavailable(error) || Date.now() + waitMs > giveUpAt) throw error;
      signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, waitMs);
        function done() {
          clearTimeout(timer);
          signal?.removeEventListener('abort', done);
          resolve();
        }
        signal?.addEventListener('abort', done, { once: true });
      });
      signal?.throwIfAborted();
    }
  }
}
