import net from 'node:net';
import { Agent, AgentStatus } from '../../entities';
import { initOrm, type Orm } from '../../lib/orm';
import { makeAgent, makeExecution, makeOrganization, makeServer } from '../../test/factories';
import { waitFor } from '../../test/fleet';
import { createTestContext, type TestContext } from '../../test/harness';
import { appendEvent, eventsAfter } from './execution-log';
import { executionRef } from './execution-status';

/**
 * A loopback proxy to PostgreSQL that, once, lets an event's insert through, waits until it is
 * committed, and then cuts the connection before its answer reaches the client: the writer sees
 * its connection lost with its insert done, as when PostgreSQL stops at that moment.
 */
async function answerLosingProxy(targetPort: number, committed: () => Promise<boolean>) {
  let armed = true;
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, '127.0.0.1');
    for (const socket of [client, upstream]) socket.on('error', () => undefined);
    let insertSent = false;
    client.on('data', (chunk: Buffer) => {
      if (armed && chunk.includes('insert into execution_events')) insertSent = true;
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (!insertSent) {
        client.write(chunk);
        return;
      }
      armed = false;
      insertSent = false;
      void waitFor(committed, 30_000, 20).then(() => {
        client.destroy();
        upstream.destroy();
      });
    });
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('the execution log while PostgreSQL goes away', () => {
  let ctx: TestContext;
  let agent: Agent;

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = ctx.orm.em.fork();
    agent = makeAgent(setup, makeServer(setup, makeOrganization(setup, 'Execution Log Org')));
    agent.status = AgentStatus.ACTIVE;
    await setup.flush();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('an append whose answer was lost after its commit is tried again and written once, with its seq', async () => {
    const setup = ctx.orm.em.fork();
    const execution = makeExecution(setup, agent);
    await setup.flush();
    const rows = async () => (await eventsAfter(ctx.orm.em.fork(), execution.id, 0)).length;
    const url = new URL(ctx.config.database.url!);
    const proxy = await answerLosingProxy(Number(url.port), async () => (await rows()) === 1);
    url.port = String(proxy.port);
    let orm: Orm | undefined;
    try {
      orm = await initOrm(url.toString(), { poolMax: 1, logger: ctx.logger });
      const payload = await appendEvent(orm.em.fork(), executionRef(execution), 1, 'output', { output: 'once' });
      expect(payload).toMatchObject({ seq: 1, output: 'once' });
      const log = await eventsAfter(ctx.orm.em.fork(), execution.id, 0);
      expect(log.map((e) => [e.seq, e.output])).toEqual([[1, 'once']]);
    } finally {
      await orm?.close(true);
      await proxy.close();
    }
  });

  it('an append in a transaction whose seq another writer takes first takes the next one, and the transaction goes on', async () => {
    const setup = ctx.orm.em.fork();
    const execution = makeExecution(setup, agent);
    await setup.flush();
    const ref = executionRef(execution);
    // The other writer inserts seq 1 and holds its transaction open; ours then computes seq 1 too,
    // waits on the unique key, and finds it taken once the other commits.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let otherWrote!: () => void;
    const wrote = new Promise<void>((resolve) => (otherWrote = resolve));
    const other = ctx.orm.em.fork().transactional(async (tx) => {
      await appendEvent(tx, ref, 1, 'output', { output: 'other' });
      otherWrote();
      await held;
    });
    await wrote;
    const ours = ctx.orm.em.fork().transactional(async (tx) => {
      const first = appendEvent(tx, ref, 1, 'output', { output: 'ours' });
      // Ours waits on the other's row until the other commits.
      await waitFor(
        async () =>
          (
            await ctx.orm.em
              .fork()
              .execute<{ n: number }[]>(
                "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and query like '%insert into execution_events%'",
              )
          )[0]!.n > 0,
        30_000,
        10,
      );
      release();
      const payload = await first;
      // The transaction is still usable: one more append in it.
      const second = await appendEvent(tx, ref, 1, 'output', { output: 'ours again' });
      return [payload.seq, second.seq];
    });
    await other;
    expect(await ours).toEqual([2, 3]);
    const log = await eventsAfter(ctx.orm.em.fork(), execution.id, 0);
    expect(log.map((e) => [e.seq, e.output])).toEqual([
      [1, 'other'],
      [2, 'ours'],
      [3, 'ours again'],
    ]);
  });
});
