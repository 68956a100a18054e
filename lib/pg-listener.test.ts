import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Client } from 'pg';
import { waitFor } from '../test/fleet';
import { loadConfig } from './config';
import { createLogger } from './logger';
import { PgListener, type PgListenerOptions } from './pg-listener';
import { freePort } from '../dev/free-port';

describe('PgListener', () => {
  const config = loadConfig();
  const databaseUrl = config.database.url!;
  const logger = createLogger(config, 'test');
  const channel = `test_${randomUUID().replace(/-/g, '')}`;
  let notifier: Client;
  const listeners: PgListener[] = [];

  const listen = (options: Partial<PgListenerOptions> & Pick<PgListenerOptions, 'onNotification'>) => {
    const listener = new PgListener({ databaseUrl, channels: [channel], logger, name: 'test listener', ...options });
    listeners.push(listener);
    return listener;
  };
  const notify = (payload: string, on = channel) => notifier.query('select pg_notify($1, $2)', [on, payload]);

  beforeAll(async () => {
    notifier = new Client({ connectionString: databaseUrl });
    await notifier.connect();
  });
  afterAll(async () => {
    for (const listener of listeners) await listener.close();
    await notifier?.end();
  });

  it('delivers its channels’ notifications one at a time, in order, and goes on after a failing handler', async () => {
    const seen: string[] = [];
    const listener = listen({
      onNotification: async (_channel, payload) => {
        if (payload === 'bad') throw new Error('handler failed');
        // A slow handler must not let the next notification overtake it.
        if (payload === 'slow') await new Promise((r) => setTimeout(r, 100));
        seen.push(payload);
      },
    });
    await listener.start();
    await notify('slow');
    await notify('elsewhere', `${channel}_other`);
    await notify('bad');
    await notify('fast');
    await waitFor(async () => seen.length === 2);
    expect(seen).toEqual(['slow', 'fast']);
  });

  it('reconnects after a loss and catches up before it delivers what arrived with the new LISTEN', async () => {
    const seen: string[] = [];
    const losses: Date[] = [];
    const listener = listen({
      onNotification: (_channel, payload) => void seen.push(payload),
      onReconnect: async (lostAt) => {
        losses.push(lostAt);
        await new Promise((r) => setTimeout(r, 100));
        seen.push('caught up');
      },
    });
    await listener.start();
    await notify('before');
    await waitFor(async () => seen.includes('before'));
    const before = new Date();

    listener.simulateConnectionLoss();
    let sent = 0;
    await waitFor(async () => {
      await notify(`after ${++sent}`);
      return seen.some((p) => p.startsWith('after'));
    });

    expect(losses).toHaveLength(1);
    expect(losses[0]!.getTime()).toBeGreaterThanOrEqual(before.getTime());
    expect(seen[0]).toBe('before');
    expect(seen[1]).toBe('caught up');
    expect(seen.slice(2).every((p) => p.startsWith('after'))).toBe(true);
  });

  it('refuses to start when the first connection fails, and stays closed once closed', async () => {
    const unreachable = new PgListener({
      databaseUrl: `postgres://nobody@127.0.0.1:${await freePort()}/none`,
      channels: [channel],
      logger,
      name: 'test listener',
      onNotification: () => undefined,
    });
    await expect(unreachable.start()).rejects.toThrow();

    const seen: string[] = [];
    const listener = listen({ onNotification: (_channel, payload) => void seen.push(payload) });
    await listener.start();
    await listener.close();
    listener.simulateConnectionLoss();
    await notify('after close');
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([]);
  });
  it('gives up a connection the server accepts and never answers (a host dropping packets) instead of waiting forever', async () => {
    const silent = net.createServer((socket) => socket.on('error', () => undefined));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = new URL(databaseUrl);
      url.port = String((silent.address() as net.AddressInfo).port);
      const listener = listen({ databaseUrl: url.toString(), onNotification: () => undefined });
      // Its first connection: a failure rejects start() (a later one would be retried with backoff).
      await expect(listener.start()).rejects.toThrow(/timeout/i);
    } finally {
      silent.close();
    }
  }, 60_000);
});
