import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import type { EntityManager } from '@mikro-orm/postgresql';
import { waitFor } from '../test/fleet';
import { createTestContext, type TestContext } from '../test/harness';
import { queueNotify } from './notify-on-commit';

describe("a transaction's NOTIFYs, sent in one statement at its commit", () => {
  let ctx: TestContext;
  let listener: Client;
  const channel = `test_${randomUUID().replace(/-/g, '')}`;
  const heard: string[] = [];
  const statements: string[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    listener = new Client({ connectionString: ctx.config.database.url! });
    await listener.connect();
    listener.on('notification', (n) => {
      if (n.channel === channel) heard.push(n.payload ?? '');
    });
    await listener.query(`listen ${channel}`);
    const knex = ctx.orm.em.getConnection().getKnex();
    knex.on('query', (q: { sql: string }) => statements.push(q.sql));
  });
  afterAll(async () => {
    await listener?.end();
    await ctx?.close();
  });
  beforeEach(() => {
    heard.length = 0;
    statements.length = 0;
  });

  /** Sends a NOTIFY that gives away nothing: only its arrival, after the others, tells they were all sent. */
  const marker = async (name: string) => {
    await ctx.orm.em.getConnection().execute('select pg_notify(?, ?)', [channel, name]);
    await waitFor(async () => heard.includes(name), 10_000, 5);
  };
  const notify = (em: EntityManager, payload: string) => {
    if (!queueNotify(em, channel, payload)) return em.execute('select pg_notify(?, ?)', [channel, payload]);
  };

  it('holds them until the commit, then sends them all in one statement, in order', async () => {
    await ctx.orm.em.fork().transactional(async (tx) => {
      await notify(tx, 'one');
      await notify(tx, 'two');
      await notify(tx, 'three');
      expect(statements.filter((s) => s.includes('pg_notify'))).toEqual([]);
    });
    await marker('after');
    expect(heard).toEqual(['one', 'two', 'three', 'after']);
    expect(statements.filter((s) => s.includes('pg_notify') && s.includes('jsonb_array_elements'))).toHaveLength(1);
  });

  it('sends none of a transaction that rolls back', async () => {
    await expect(
      ctx.orm.em.fork().transactional(async (tx) => {
        await notify(tx, 'lost');
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await marker('after');
    expect(heard).toEqual(['after']);
  });

  it('sends those of a savepoint at once, and drops them when the savepoint rolls back, as PostgreSQL does', async () => {
    await ctx.orm.em.fork().transactional(async (tx) => {
      await notify(tx, 'outer');
      await expect(
        tx.transactional(async (inner) => {
          expect(queueNotify(inner, channel, 'never queued')).toBe(false);
          await notify(inner, 'inner, rolled back');
          throw new Error('savepoint rolled back');
        }),
      ).rejects.toThrow('savepoint rolled back');
      await tx.transactional(async (inner) => notify(inner, 'inner, kept'));
    });
    await marker('after');
    expect(heard).toEqual(['inner, kept', 'outer', 'after']);
  });

  it('sends one outside a transaction at once', async () => {
    expect(queueNotify(ctx.orm.em.fork(), channel, 'x')).toBe(false);
  });
});
