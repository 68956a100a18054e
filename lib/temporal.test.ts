import net from 'node:net';
import { Client, Connection } from '@temporalio/client';
import { freePort } from '../dev/free-port';
import { devServerDynamicConfigFlags, isTemporalUnavailable, temporalConnectionOptions, type TemporalCallPolicy } from './temporal';

/**
 * The API's Temporal call policy against the two ways a Temporal can be unavailable: nothing
 * listens (connections refused), or something accepts connections and never answers (a stuck
 * frontend, a black-holed network path). Either way a call fails within the policy's bound
 * with an error the error handler maps to 503 temporal_unavailable.
 */
describe('the API Temporal call policy', () => {
  const policy: TemporalCallPolicy = { attempts: 4, deadlineMs: 1500 };
  /** The gRPC status code in the error's cause chain (the SDK wraps it). */
  const grpcCode = (error: unknown): number | undefined => {
    for (let e = error; e; e = (e as { cause?: unknown }).cause)
      if (typeof (e as { code?: unknown }).code === 'number') return (e as { code: number }).code;
    return undefined;
  };
  const closers: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
  });

  async function timedStart(address: string, callPolicy: TemporalCallPolicy) {
    const connection = Connection.lazy(temporalConnectionOptions(address, callPolicy));
    closers.push(() => connection.close());
    const client = new Client({ connection });
    const started = Date.now();
    const error = await client.workflow.start('anything', { taskQueue: 'nowhere', workflowId: 'never-started' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    return { error, ms: Date.now() - started };
  }

  it('fails a call to a Temporal that refuses connections after a few quick tries', async () => {
    // A deadline far away: the tries give up first (4 tries, 0.2 to 0.5 s apart, about 1 s).
    const { error, ms } = await timedStart(`127.0.0.1:${await freePort()}`, { ...policy, deadlineMs: 60_000 });
    expect(isTemporalUnavailable(error)).toBe(true);
    expect(grpcCode(error)).toBe(14); // UNAVAILABLE, not the deadline
    // The SDK's default 10 tries take about 20 s; a loaded machine adds little to timers.
    expect(ms).toBeLessThan(10_000);
  });

  it('fails a call to a Temporal that accepts connections and never answers at its deadline', async () => {
    const sockets = new Set<net.Socket>();
    const blackHole = net.createServer((socket) => sockets.add(socket));
    await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
    closers.push(
      () =>
        new Promise((r) => {
          for (const socket of sockets) socket.destroy();
          blackHole.close(r);
        }),
    );
    const { port } = blackHole.address() as net.AddressInfo;
    const { error, ms } = await timedStart(`127.0.0.1:${port}`, policy);
    expect(isTemporalUnavailable(error)).toBe(true);
    expect(grpcCode(error)).toBe(4); // DEADLINE_EXCEEDED
    expect(ms).toBeGreaterThanOrEqual(policy.deadlineMs - 50);
    // Without a policy (the worker's connection) the same call waits as long as the server does.
    expect(ms).toBeLessThan(policy.deadlineMs + 30_000);
  });

  it('does not take a refusal of the request for unavailability', () => {
    expect(isTemporalUnavailable(new Error('14 UNAVAILABLE'))).toBe(false);
    expect(isTemporalUnavailable(Object.assign(new Error('already started'), { code: 6, details: '', metadata: {} }))).toBe(false);
  });
});

/**
 * The dev server's transfer queue is read at most 20 times a second per shard by default, and
 * the dev server has one shard: above about 10 workflows/s every start waited up to 50 ms for
 * its first workflow task (bench/server-test-pace.ts shows it; docs/benchmarks.md).
 */
describe('the dev server dynamic config', () => {
  it('reads the transfer queue well above Temporal default of 20 reads/s, in flags start-dev takes', () => {
    const flags = devServerDynamicConfigFlags();
    const values = flags.filter((_, i) => i % 2 === 1);
    expect(flags.filter((_, i) => i % 2 === 0).every((flag) => flag === '--dynamic-config-value')).toBe(true);
    const rate = values.find((v) => v.startsWith('history.transferProcessorMaxPollRPS='));
    expect(Number(rate?.split('=')[1])).toBeGreaterThanOrEqual(200);
  });
});
