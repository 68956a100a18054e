import path from 'node:path';
import { DefaultLogger, MikroORM, type LoggerNamespace, type LoggerOptions, type LogContext, type Options } from '@mikro-orm/core';
import { Migrator } from '@mikro-orm/migrations';
import { PostgreSqlDriver, type EntityManager } from '@mikro-orm/postgresql';
import { ENTITIES } from '../entities';
import { MIGRATIONS } from '../entities/migrations';
import { PROJECT_ROOT } from './config';
import type { Logger } from './logger';
import { NotifyOnCommit } from './notify-on-commit';

/** Typed with PostgreSQL's EntityManager, so `orm.em` and its forks are what the commands take. */
export type Orm = MikroORM<PostgreSqlDriver, EntityManager>;

/** Source folder of the migrations (new ones are written there; the snapshot lives beside them). */
export const MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'entities', 'migrations');

// MikroORM logs each statement with its parameters inlined ('query', 'query-params', and
// the failing ones at level error): with a debug flag, or MIKRO_ORM_DEBUG in the environment,
// which MikroORM reads itself, password hashes and tokens would reach the log. Only these
// namespaces, which never quote a statement, get through.
const LOGGED_NAMESPACES: readonly LoggerNamespace[] = ['discovery', 'info', 'deprecated'];

class StatementFreeLogger extends DefaultLogger {
  override isEnabled(namespace: LoggerNamespace, context?: LogContext): boolean {
    return LOGGED_NAMESPACES.includes(namespace) && super.isEnabled(namespace, context);
  }

  override logQuery(): void {}
}

/**
 * Bounds on waiting for a connection, so a request that needs PostgreSQL while it is gone (or
 * the pool is exhausted) fails in seconds, as a 503 (lib/database-unavailable.ts), instead of
 * hanging: a new connection gets 10 s to be made (a refused one fails at once; a host that
 * drops packets would otherwise hold it for the OS's TCP timeout, minutes), and a query waits
 * at most 15 s for a pooled connection (knex's default is 60 s).
 */
export const DB_CONNECT_TIMEOUT_MS = 10_000;
export const DB_ACQUIRE_TIMEOUT_MS = 15_000;

export function ormOptions(url: string, options: { poolMax?: number; logger?: Logger } = {}): Options<PostgreSqlDriver> {
  return {
    driver: PostgreSqlDriver,
    clientUrl: url,
    entities: ENTITIES,
    discovery: { disableDynamicFileAccess: true, requireEntitiesArray: true },
    extensions: [Migrator],
    // A transaction's NOTIFYs go out in one statement at its commit (lib/notify-on-commit.ts).
    subscribers: [new NotifyOnCommit()],
    migrations: {
      // The list is imported, not globbed, so the same code runs under tsx, Jest and compiled JS.
      migrationsList: MIGRATIONS,
      path: MIGRATIONS_DIR,
      pathTs: MIGRATIONS_DIR,
      emit: 'ts',
      snapshot: true,
      snapshotName: '.snapshot-mcp-fleet',
      transactional: true,
      allOrNothing: true,
      disableForeignKeys: false,
      silent: true,
    },
    forceUtcTimezone: true,
    pool: { min: 0, max: options.poolMax ?? 10, acquireTimeoutMillis: DB_ACQUIRE_TIMEOUT_MS },
    driverOptions: {
      connection: { connectionTimeoutMillis: DB_CONNECT_TIMEOUT_MS },
      // knex writes its warnings (a pooled connection found dead after a restart) to the console.
      log: options.logger ? knexLog(options.logger) : undefined,
    },
    debug: false,
    logger: options.logger ? (message) => options.logger!.debug({ orm: message }) : undefined,
    loggerFactory: (loggerOptions: LoggerOptions) => new StatementFreeLogger(loggerOptions),
  };
}

/** knex's own messages name no statement or value (MikroORM logs those, StatementFreeLogger above). */
function knexLog(logger: Logger) {
  return {
    warn: (message: unknown) => logger.warn({ knex: String(message) }, 'database pool'),
    error: (message: unknown) => logger.error({ knex: String(message) }, 'database pool'),
    deprecate: (message: unknown) => logger.debug({ knex: String(message) }, 'database pool'),
    debug: () => undefined,
  };
}

export async function initOrm(url: string, options: { poolMax?: number; logger?: Logger } = {}): Promise<Orm> {
  return MikroORM.init<PostgreSqlDriver, EntityManager>(ormOptions(url, options));
}

export async function migrateUp(orm: Orm): Promise<string[]> {
  const applied = await orm.getMigrator().up();
  return applied.map((m) => m.name);
}

/** The API and the worker need a real database URL; `npm run dev` provides the embedded one. */
export function requireDatabaseUrl(url: string | undefined): string {
  if (!url) {
    throw new Error(
      'DATABASE_URL is not set. Start everything with `npm run dev` (embedded PostgreSQL), or set DATABASE_URL=postgres://user:pass@host:5432/db.',
    );
  }
  return url;
}
