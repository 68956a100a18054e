import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Writable } from 'node:stream';
import Koa from 'koa';
import request from 'supertest';
import { MikroORM } from '@mikro-orm/core';
import type { EntityManager, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { errorHandler } from '../api/middleware/error-handler';
import { requestLogger } from '../api/middleware/request-logger';
import { Organization, User, UserRole } from '../entities';
import { uniqueSlug } from '../test/factories';
import { context, trace } from '@opentelemetry/api';
import { loadConfig, loadTracingConfig } from './config';
import { createLogger, type Logger } from './logger';
import { startTracing, tracer } from './tracing';
import { ormOptions, type Orm } from './orm';

/** A real logger (the project's own factory) writing JSON lines into memory. */
function capturingLogger(): { logger: Logger; text: () => string; lines: () => Array<Record<string, unknown>> } {
  let out = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((out += chunk.toString()), done()) });
  const logger = createLogger({ log: { level: 'trace', pretty: false } }, 'logger-test', sink);
  return {
    logger,
    text: () => out,
    lines: () =>
      out
        .trim()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('database errors in the log', () => {
  const url = loadConfig().database.url!;
  // Looks like the real thing, so any leak of the insert's values would show.
  const SECRET_HASH = `$2b$12$${randomUUID().replace(/-/g, '')}SeCrEtHaSh`;
  let orm: Orm;
  let organizationId: string;
  let takenEmail: string;

  beforeAll(async () => {
    orm = await MikroORM.init<PostgreSqlDriver>(ormOptions(url, { poolMax: 2 }));
    const em = orm.em.fork();
    const organization = em.create(Organization, { name: 'Log Org', slug: uniqueSlug('log') });
    takenEmail = `taken-${randomUUID().slice(0, 8)}@example.test`;
    em.create(User, { organization, email: takenEmail, name: 'First', role: UserRole.ADMIN, passwordHash: '$2b$04$first' });
    await em.flush();
    organizationId = organization.id;
  });
  afterAll(() => orm?.close(true));

  /** A real failing insert: the unique email again, with a hash that must never be logged. */
  async function failingInsert(em: EntityManager): Promise<unknown> {
    em.create(User, {
      organization: em.getReference(Organization, organizationId),
      email: takenEmail,
      name: 'Second',
      role: UserRole.VIEWER,
      passwordHash: SECRET_HASH,
    });
    try {
      await em.flush();
    } catch (error) {
      return error;
    }
    throw new Error('the insert was expected to fail');
  }

  function expectNoLeak(text: string) {
    expect(text).not.toContain(SECRET_HASH);
    expect(text).not.toContain('$2b$');
    expect(text).not.toContain(takenEmail);
    expect(text).not.toMatch(/insert into/i);
  }

  it('the driver error itself holds the SQL and the values (what must not be logged)', async () => {
    const error = (await failingInsert(orm.em.fork())) as Error;
    expect(error.message).toContain(SECRET_HASH);
    expect(error.message).toMatch(/insert into/i);
  });

  it('logs code and constraint, not the message, SQL or values, under err, error and as a cause', async () => {
    const { logger, text, lines } = capturingLogger();
    const error = await failingInsert(orm.em.fork());
    logger.error({ err: error }, 'insert failed');
    // The Temporal SDK logs a failed activity as { error }.
    logger.warn({ error }, 'Activity failed');
    logger.error({ err: new Error('could not register', { cause: error }) }, 'wrapped');
    expectNoLeak(text());
    const [direct, activity, wrapped] = lines();
    for (const logged of [direct!.err, activity!.error, (wrapped!.err as { cause: unknown }).cause]) {
      expect(logged).toMatchObject({
        type: 'UniqueConstraintViolationException',
        code: '23505',
        constraint: 'users_email_unique',
        table: 'users',
      });
    }
    expect(wrapped!.err).toMatchObject({ type: 'Error', message: 'could not register' });
  });

  it('withholds the text of any other error that quotes SQL', () => {
    const { logger, text, lines } = capturingLogger();
    logger.error(
      { err: new Error(`activity failed: insert into "users" ("email", "password_hash") values ('${takenEmail}', '${SECRET_HASH}')`) },
      'boom',
    );
    expectNoLeak(text());
    expect(lines()[0]!.err).toMatchObject({ type: 'Error', message: expect.stringContaining('withheld') });
  });

  it('keeps an ordinary error readable', () => {
    const { logger, lines } = capturingLogger();
    logger.error({ err: Object.assign(new Error('the server answered 503'), { code: 'upstream' }) }, 'check failed');
    expect(lines()[0]!.err).toMatchObject({
      type: 'Error',
      message: 'the server answered 503',
      code: 'upstream',
      stack: expect.stringContaining('logger.test.ts'),
    });
  });

  it('an unhandled failing insert in a request is logged without its values', async () => {
    const { logger, text, lines } = capturingLogger();
    const app = new Koa();
    app.silent = true;
    app.use(errorHandler() as Koa.Middleware);
    app.use(requestLogger(logger) as Koa.Middleware);
    app.use(async () => {
      throw await failingInsert(orm.em.fork());
    });
    // The unique violation is a 409 (not logged as an error); any other driver error is logged.
    const res = await request(app.callback()).get('/');
    expect(res.status).toBe(409);
    const notNull = new Koa();
    notNull.silent = true;
    notNull.use(errorHandler() as Koa.Middleware);
    notNull.use(requestLogger(logger) as Koa.Middleware);
    notNull.use(async () => {
      const em = orm.em.fork();
      // A check the entity does not know about: the database refuses the NUL.
      em.create(User, {
        organization: em.getReference(Organization, organizationId),
        email: `nul-${randomUUID().slice(0, 8)}@example.test`,
        name: 'a\u0000b',
        role: UserRole.VIEWER,
        passwordHash: SECRET_HASH,
      });
      await em.flush();
    });
    await request(notNull.callback()).get('/').expect(500);
    expectNoLeak(text());
    const unhandled = lines().find((line) => line.msg === 'unhandled error');
    expect(unhandled?.err).toMatchObject({ type: expect.stringMatching(/Exception$/), code: expect.stringMatching(/^[0-9A-Z]{5}$/) });
  });

  it('never writes queries to the log, even with the ORM debug mode on', async () => {
    const { logger, text } = capturingLogger();
    const debugOrm = await MikroORM.init<PostgreSqlDriver>({ ...ormOptions(url, { poolMax: 1, logger }), debug: true });
    try {
      await failingInsert(debugOrm.em.fork());
    } finally {
      await debugOrm.close(true);
    }
    // The ORM's other messages (discovery, ...) still arrive: the logger is wired.
    expect(text()).toContain('"orm"');
    expectNoLeak(text());
    expect(text()).not.toMatch(/\bselect\b/i);
  });
});

describe('colour in pretty logs', () => {
  /** A real process that logs one pretty line through the project's config and logger, its stdout a pipe (as when redirected to a file). */
  function logLine(env: Record<string, string>): Promise<string> {
    // Only what each case says: Jest's own workers run with FORCE_COLOR set.
    const base = { NODE_ENV: 'test', DATA_DIR: loadConfig().dataDir, LOG_PRETTY: 'true', LOG_LEVEL: 'info' };
    const script =
      "const { loadConfig } = require('./lib/config'); const { createLogger } = require('./lib/logger'); createLogger(loadConfig(), 'colour').info({ n: 1 }, 'hello');";
    return new Promise((resolve, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', '-e', script],
        { cwd: path.join(__dirname, '..'), env: { ...base, ...env } },
        (error, stdout) => (error ? reject(error) : resolve(stdout)),
      ),
    );
  }
  const ESCAPE = '\u001b[';

  it('a redirected log has no escape codes; FORCE_COLOR and LOG_COLOR ask for them, NO_COLOR refuses them', async () => {
    const [redirected, forced, asked, refused] = await Promise.all([
      logLine({}),
      logLine({ FORCE_COLOR: '1' }),
      logLine({ LOG_COLOR: 'true' }),
      logLine({ NO_COLOR: '1' }),
    ]);
    expect(redirected).toMatch(/INFO.*hello/);
    expect(redirected).not.toContain(ESCAPE);
    expect(refused).toMatch(/INFO.*hello/);
    expect(refused).not.toContain(ESCAPE);
    expect(forced).toContain(ESCAPE);
    expect(asked).toContain(ESCAPE);
  }, 120_000);
});

describe('trace correlation', () => {
  it('a line logged while a span is active carries its trace_id and span_id; others carry neither', async () => {
    const tracing = startTracing(
      loadTracingConfig({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      }),
      'api',
    );
    const log = capturingLogger();
    try {
      log.logger.info('before');
      const span = tracer().startSpan('work');
      context.with(trace.setSpan(context.active(), span), () => log.logger.info('inside'));
      span.end();
      log.logger.info('after');
      const [before, inside, after] = log.lines();
      expect(before).not.toHaveProperty('trace_id');
      expect(inside).toMatchObject({ msg: 'inside', trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
      expect(inside!.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(after).not.toHaveProperty('trace_id');
    } finally {
      // Nothing listens on port 9: the export of the buffered span fails at once, and that is fine.
      await tracing.shutdown().catch(() => {});
    }
  });

  it('with tracing off no line carries a trace id', () => {
    const log = capturingLogger();
    const span = tracer().startSpan('work');
    context.with(trace.setSpan(context.active(), span), () => log.logger.info('inside'));
    expect(log.lines()[0]).not.toHaveProperty('trace_id');
  });
});
