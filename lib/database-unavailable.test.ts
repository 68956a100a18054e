import { MikroORM } from '@mikro-orm/core';
import type { EntityManager, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { freePort } from '../dev/free-port';
import { waitFor } from '../test/fleet';
import { loadConfig } from './config';
import { isDatabaseUnavailable, retryWhileDatabaseUnavailable } from './database-unavailable';
import { ormOptions } from './orm';

type Orm = MikroORM<PostgreSqlDriver, EntityManager>;

/** What a real failure throws, caught. */
async function thrown(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected a failure');
}

/**
 * The errors are the real ones, as MikroORM, knex and pg throw them: a refused connection, a
 * session the server ended, a pool that waited past its acquire timeout; and, for contrast,
 * statements that are wrong, which are no outage.
 */
describe('isDatabaseUnavailable', () => {
  const url = loadConfig().database.url!;
  const orms: Orm[] = [];
  const open = async (poolOptions: { max: number; acquireTimeoutMillis?: number }, at = url) => {
    const options = ormOptions(at, { poolMax: poolOptions.max });
    // connect: false, as a running process whose database goes away has no connection to make at init.
    const orm = await MikroORM.init<PostgreSqlDriver, EntityManager>({
      ...options,
      connect: false,
      pool: { ...options.pool, ...poolOptions },
    });
    orms.push(orm);
    return orm;
  };
  afterAll(async () => {
    for (const orm of orms) await orm.close(true);
  });

  it('a refused connection (nothing listens on the port) is unavailability', async () => {
    const closed = new URL(url);
    closed.port = String(await freePort());
    const orm = await open({ max: 1 }, closed.toString());
    const error = await thrown(() => orm.em.fork().execute('select 1'));
    expect(error).toMatchObject({ code: 'ECONNREFUSED' });
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('a session the server ended (a stop, a failover) is unavailability, whichever way pg reports it', async () => {
    const orm = await open({ max: 2 });
    const failure = orm.em.fork().transactional(async (tx) => {
      const [{ pid }] = await tx.execute<{ pid: number }[]>('select pg_backend_pid() as pid');
      await orm.em.fork().execute('select pg_terminate_backend(?)', [pid]);
      await tx.execute('select 1');
    });
    const error = await thrown(() => failure);
    // 57P01 when the termination notice is read, a "connection terminated" sentence otherwise.
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('a pool that waited past its acquire timeout is unavailability', async () => {
    const orm = await open({ max: 1, acquireTimeoutMillis: 200 });
    // The pool's one connection is made first: on a loaded machine making it may take longer than
    // the 200 ms, which would fail the holding transaction instead of the query that waits.
    await waitFor(
      () =>
        orm.em
          .fork()
          .execute('select 1')
          .then(
            () => true,
            () => false,
          ),
      30_000,
      50,
    );
    let release = () => undefined as unknown;
    let holding = () => undefined as unknown;
    const holds = new Promise((r) => (holding = r as () => unknown));
    const held = orm.em.fork().transactional(async (tx) => {
      await tx.execute('select 1');
      holding();
      await new Promise((r) => (release = r as () => unknown));
    });
    await holds;
    const error = await thrown(() => orm.em.fork().execute('select 1')).finally(() => release());
    await held;
    expect((error as Error).message).toMatch(/^Knex: Timeout acquiring a connection/);
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it('a wrong statement, a failing one, or any other error is not', async () => {
    const orm = await open({ max: 1 });
    const syntax = await thrown(() => orm.em.fork().execute('selec 1'));
    const division = await thrown(() => orm.em.fork().execute('select 1 / (select count(*) from pg_database where false)'));
    expect(division).toMatchObject({ code: '22012' });
    // A NUL in a string is a protocol violation (class 08, like the connection failures): the client's fault.
    const nul = await thrown(() => orm.em.fork().execute('select ?::text', ['a\u0000b']));
    expect(nul).toMatchObject({ code: '08P01' });
    for (const error of [
      syntax,
      division,
      nul,
      new Error('Connection terminated is only quoted here, mid-sentence'),
      undefined,
      'ECONNREFUSED',
    ])
      expect(isDatabaseUnavailable(error)).toBe(false);
  });
});

describe('retryWhileDatabaseUnavailable', () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

  it('tries again while the database is unavailable, and answers what the write answers once it is back', async () => {
    let tries = 0;
    const answer = await retryWhileDatabaseUnavailable(async () => {
      if (++tries < 4) throw refused;
      return 'written';
    });
    expect(answer).toBe('written');
    expect(tries).toBe(4);
  });

  it('throws any other failure at once', async () => {
    let tries = 0;
    const wrong = new Error('a wrong statement');
    await expect(
      retryWhileDatabaseUnavailable(async () => {
        tries++;
        throw wrong;
      }),
    ).rejects.toBe(wrong);
    expect(tries).toBe(1);
  });

  it("stops waiting when its signal aborts (a cancelled run), with the signal's reason", async () => {
    const controller = new AbortController();
    const cancelled = new Error('cancelled');
    let tries = 0;
    const waiting = retryWhileDatabaseUnavailable(
      async () => {
        if (++tries === 2) controller.abort(cancelled);
        throw refused;
      },
      60_000,
      controller.signal,
    );
    await expect(waiting).rejects.toBe(cancelled);
    expect(tries).toBe(2);
  });

  it('gives up after its grace, with the last failure', async () => {
    let tries = 0;
    await expect(
      retryWhileDatabaseUnavailable(async () => {
        tries++;
        throw refused;
      }, 500),
    ).rejects.toBe(refused);
    expect(tries).toBeGreaterThanOrEqual(2);
  });
});
