import { spawn, type ChildProcess } from 'node:child_process';
import { Writable } from 'node:stream';
import pino from 'pino';
import { isAlive } from '../dev/process-alive';
import { superviseChild, type RestartPolicy, type SupervisedChild } from './dev-supervisor';

/** Real child processes (`node -e`), a real pino logger whose JSON lines the test reads. */
function harness(script: string, policy: Partial<RestartPolicy>) {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  const spawned: ChildProcess[] = [];
  const lines: string[] = [];
  const gaveUp: string[] = [];
  const supervised: SupervisedChild = superviseChild({
    name: 'worker',
    spawn: () => spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] }),
    ready: /^up$/,
    logger: pino({ level: 'info' }, sink),
    policy,
    onLine: (line) => lines.push(line),
    onSpawn: (child) => spawned.push(child),
    onGiveUp: (reason) => gaveUp.push(reason),
  });
  return { supervised, logs, spawned, lines, gaveUp };
}

/** Waits for a condition; the bound is a ceiling for a loaded machine, not an expectation. */
async function until(condition: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STAYS_UP = "console.log('up'); setInterval(() => {}, 1000)";

describe('superviseChild', () => {
  const started: SupervisedChild[] = [];
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.stop(2_000)));
  });

  it('restarts a child killed with SIGKILL and logs which child, how it died, the restart number and the delay', async () => {
    const h = harness(STAYS_UP, { initialDelayMs: 50 });
    started.push(h.supervised);
    await h.supervised.ready;
    const first = h.spawned[0]!.pid!;
    process.kill(first, 'SIGKILL');
    await until(() => h.lines.filter((l) => l === 'up').length === 2);

    expect(h.spawned).toHaveLength(2);
    expect(h.supervised.pid).toBe(h.spawned[1]!.pid);
    expect(h.supervised.pid).not.toBe(first);
    expect(isAlive(h.supervised.pid!)).toBe(true);
    const restart = h.logs.find((l) => l.restart === 1 && l.level === 40)!;
    expect(restart).toMatchObject({ child: 'worker', signal: 'SIGKILL', code: null, restart: 1, delayMs: 50 });
    expect(restart.msg).toBe('worker exited (signal SIGKILL); restart 1 in 50 ms');
    await until(() => h.logs.some((l) => l.msg === 'worker is up again after restart 1'));
    expect(h.gaveUp).toEqual([]);

    const last = h.supervised.pid!;
    await h.supervised.stop(2_000);
    await until(() => !isAlive(last));
    expect(h.spawned).toHaveLength(2);
  });

  it('backs off exponentially and gives up on a child that keeps crashing', async () => {
    // The window holds four starts of node even when each takes seconds on a loaded machine.
    const h = harness("console.log('up'); setTimeout(() => process.exit(3), 20)", {
      initialDelayMs: 20,
      maxDelayMs: 60,
      maxCrashes: 3,
      windowMs: 300_000,
    });
    started.push(h.supervised);
    await h.supervised.ready;
    await until(() => h.gaveUp.length === 1);
    await sleep(300);

    expect(h.gaveUp).toEqual(['worker crashed 4 times within 300 s (last exit: code 3); giving up']);
    expect(h.logs.filter((l) => l.level === 40).map((l) => [l.restart, l.delayMs, l.code])).toEqual([
      [1, 20, 3],
      [2, 40, 3],
      [3, 60, 3],
    ]);
    expect(h.logs.find((l) => l.level === 50)).toMatchObject({ child: 'worker', code: 3, crashes: 4 });
    expect(h.spawned).toHaveLength(4);
  });

  it('forgets crashes older than the window, so a rare crash never stops the stack', async () => {
    // Each run lives 150 ms, longer than the 50 ms window: every crash is the first in its window.
    const h = harness("console.log('up'); setTimeout(() => process.exit(1), 150)", { initialDelayMs: 10, maxCrashes: 1, windowMs: 50 });
    started.push(h.supervised);
    await h.supervised.ready;
    await until(() => h.supervised.restarts >= 4);
    await h.supervised.stop(2_000);

    expect(h.gaveUp).toEqual([]);
    expect(new Set(h.logs.filter((l) => l.level === 40).map((l) => l.delayMs))).toEqual(new Set([10]));
  });

  it('fails the start, without restarting, when the first run dies before it is ready', async () => {
    const h = harness("console.error('port taken'); process.exit(2)", { initialDelayMs: 10 });
    started.push(h.supervised);
    await expect(h.supervised.ready).rejects.toThrow('worker exited before it was ready (code 2)');
    await sleep(200);

    expect(h.spawned).toHaveLength(1);
    expect(h.lines).toEqual(['port taken']);
    expect(h.gaveUp).toEqual([]);
  });

  it('stop() cancels a pending restart', async () => {
    // The delay leaves stop() seconds to come in before the restart, even on a loaded machine.
    const delayMs = 2_000;
    const h = harness("console.log('up'); setTimeout(() => process.exit(1), 20)", { initialDelayMs: delayMs });
    started.push(h.supervised);
    await h.supervised.ready;
    await until(() => h.logs.some((l) => l.restart === 1));
    await h.supervised.stop(2_000);
    expect(h.spawned).toHaveLength(1);
    // Past the moment the restart was due: nothing was started.
    await sleep(delayMs + 500);

    expect(h.spawned).toHaveLength(1);
  });

  it('stop() kills a child that ignores SIGTERM once the grace period is over', async () => {
    const h = harness("process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000)", {});
    started.push(h.supervised);
    await h.supervised.ready;
    const child = h.spawned[0]!;
    const before = Date.now();
    await h.supervised.stop(300);

    expect(Date.now() - before).toBeGreaterThanOrEqual(250);
    expect(child.signalCode).toBe('SIGKILL');
    expect(h.spawned).toHaveLength(1);
  });
});
