/**
 * Fan-out at scale (issue 21): 1,000 Socket.IO subscribers of one organisation's room, spread
 * over two API instances that each LISTEN on PostgreSQL as in production, against one database.
 * A steady stream of `agent:status` events goes through the domain path that NOTIFYs
 * (`setAgentStatus` in a transaction, as the run lifecycle does). Measured per event:
 *  - NOTIFY → emit on each instance: the raw observations of `mcp_fleet_event_fanout_seconds`;
 *  - commit → receipt on each client (the clients run in a process of their own);
 *  - what each client received: every event once (0 lost, 0 duplicated);
 *  - `GET /api/health` p50/p99 on both instances while idle, then during the fan-out.
 * Target: NOTIFY → emit p99 ≤ 25 ms, nothing lost or duplicated.
 * `npm run bench -- fanout [--clients=N] [--events=N] [--rate=N]`; `node --import tsx bench/fanout.bench.ts` alone.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { createAppDeps } from '../api/deps';
import { startApiServer, type ApiServer } from '../api/server';
import { setAgentStatus } from '../domain/runs/agent-status';
import { AgentStatus } from '../entities';
import { startAgentHost } from '../host/server';
import { loadConfig } from '../lib/config';
import type { ApiMetrics } from '../api/metrics';
import type { ClientsAnswer, ClientsRequest } from './fanout-clients';
import { apiCaller, startBenchStack, registerBenchAccount } from './stack';

const TARGET_P99_MS = 25;

const option = (name: string, fallback: number) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found ? Number(found.split('=')[1]) : fallback;
};
const pct = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((q / 100) * xs.length))] ?? NaN;
const ms = (n: number) => `${n.toFixed(1)} ms`.padStart(9);
const at = () => performance.timeOrigin + performance.now();
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const load = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

/**
 * Every value the instance's fan-out histogram observes (ms), and the process's CPU time over
 * the same span: wall time well above CPU time is time spent waiting for a core.
 */
function recordFanout(metrics: ApiMetrics): { wall: number[]; cpu: number[] } {
  const seen = { wall: [] as number[], cpu: [] as number[] };
  const histogram = metrics.eventFanout;
  const startTimer = histogram.startTimer.bind(histogram);
  histogram.startTimer = ((labels?: never) => {
    const cpu = process.cpuUsage();
    const end = startTimer(labels);
    return (more?: never) => {
      const used = process.cpuUsage(cpu);
      const seconds = end(more);
      seen.wall.push(seconds * 1000);
      seen.cpu.push((used.user + used.system) / 1000);
      return seconds;
    };
  }) as typeof histogram.startTimer;
  return seen;
}

/** Times sequential `GET /api/health` calls, alternating between the instances, until `until()`. */
async function probeHealth(apis: ApiServer[], until: () => boolean): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; !until(); i++) {
    const t0 = at();
    const res = await fetch(`${apis[i % apis.length]!.url}/api/health`);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET /api/health → ${res.status}`);
    times.push(at() - t0);
    await sleep(20);
  }
  return times;
}

function openFileLimit(): string {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return line ? line.replace(/\s+/g, ' ').replace('Max open files ', '').trim() : 'unknown';
}

function ask(child: ChildProcess, request: ClientsRequest): Promise<ClientsAnswer> {
  return new Promise((resolve, reject) => {
    const exited = (code: number | null) => reject(new Error(`the clients' process exited with ${code}`));
    child.once('exit', exited);
    child.once('message', (answer: ClientsAnswer) => {
      child.off('exit', exited);
      resolve(answer);
    });
    child.send(request);
  });
}

export async function benchFanout(): Promise<{ pass: boolean }> {
  const clients = option('clients', 1000);
  const events = option('events', 300);
  const rate = option('rate', 20);
  const instances = option('instances', 2);
  // Each socket holds a descriptor in the clients' process and one in this one (the server side).
  const limits = openFileLimit();
  const softLimit = Number(limits.split(' ')[0]);
  if (Number.isFinite(softLimit) && softLimit < clients + 500)
    throw new Error(`open files limit ${softLimit} is too low for ${clients} sockets: raise it (ulimit -n ${clients * 2 + 1000})`);

  const host = await startAgentHost({ token: `bench-${randomUUID()}`, stepDelayMs: 1 });
  // Two instances in one process each serve /metrics on no port (one default port would clash).
  const stack = await startBenchStack({ METRICS_PORT: '0' });
  const more = await Promise.all(
    Array.from({ length: instances - 1 }, async (_, i) => {
      const app = await createAppDeps(loadConfig(stack.env), { logName: `bench-${i + 2}` });
      return { app, api: await startApiServer(app.deps, 0, '127.0.0.1') };
    }),
  );
  const apis = [stack.api, ...more.map((m) => m.api)];
  const fanout = [stack.deps.metrics, ...more.map((m) => m.app.deps.metrics)].map(recordFanout);
  let child: ChildProcess | undefined;
  try {
    const call = apiCaller(stack.api.url);
    const { accessToken: token } = await registerBenchAccount(call, 'bench-fanout@example.test', 'Bench fan-out');
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const agent = (await call('POST', '/api/agents', { serverId: server.id, name: 'fanout' }, token)) as { id: string };

    child = fork(path.join(__dirname, 'fanout-clients.ts'), [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
    const prefix = `fanout ${randomUUID().slice(0, 8)} `;
    const connected = await ask(child, { type: 'connect', urls: apis.map((a) => a.url), token, count: clients, prefix });
    if (connected.type !== 'connected') throw new Error(`clients could not connect: ${JSON.stringify(connected)}`);
    const perInstance = apis.map((a) => a.io.of('/').sockets.size);

    // Baseline: the same probe, nothing published.
    const idleUntil = at() + (events / rate) * 1000;
    const loadIdle = load();
    const idle = await probeHealth(apis, () => at() >= idleUntil);

    // The stream: one event every 1/rate s on a fixed schedule; each commits its change and NOTIFY together.
    const committedAt = new Map<string, number>();
    for (const seen of fanout) seen.wall.length = seen.cpu.length = 0;
    let published = false;
    const during = probeHealth(apis, () => published);
    const began = at();
    for (let i = 0; i < events; i++) {
      const due = began + (i * 1000) / rate;
      if (due > at()) await sleep(due - at());
      const reason = `${prefix}${i}`;
      await stack.deps.orm.em
        .fork()
        .transactional((tx) => setAgentStatus(tx, agent.id, i % 2 ? AgentStatus.ACTIVE : AgentStatus.INACTIVE, reason));
      committedAt.set(reason, at());
    }
    const loadDuring = load();
    // Delivered everywhere, or no progress for a generous while (then the report counts what was lost).
    for (let last = -1, still = 0; still < 100;) {
      const count = await ask(child, { type: 'count' });
      const received = count.type === 'count' ? count.received : 0;
      if (received >= clients * events) break;
      still = received === last ? still + 1 : 0;
      last = received;
      await sleep(100);
    }
    published = true;
    const busy = await during;
    const report = await ask(child, { type: 'report' });
    if (report.type !== 'report') throw new Error(`no report from the clients: ${JSON.stringify(report)}`);

    const receipt: number[] = [];
    let lost = 0;
    let duplicated = 0;
    let incomplete = 0;
    const perClient: number[] = [];
    for (const mine of report.receipts) {
      perClient.push([...committedAt.keys()].filter((reason) => mine[reason]?.length).length);
      let missing = 0;
      for (const [reason, committed] of committedAt) {
        const times = mine[reason] ?? [];
        if (times.length === 0) missing++;
        duplicated += Math.max(0, times.length - 1);
        if (times[0] !== undefined) receipt.push(times[0] - committed);
      }
      lost += missing;
      if (missing) incomplete++;
    }
    const emit = fanout.flatMap((f) => f.wall);
    const pass = pct(emit, 99) <= TARGET_P99_MS && lost === 0 && duplicated === 0 && report.receipts.length === clients;
    const rows: [string, number[]][] = [
      [`NOTIFY → emit (${instances} instance${instances > 1 ? 's' : ''})`, emit],
      ...fanout.map((f, i): [string, number[]] => [`  instance ${i + 1}`, f.wall]),
      ['  CPU time of the process', fanout.flatMap((f) => f.cpu)],
      ['commit → client receipt', receipt],
      ['GET /api/health, idle', idle],
      ['GET /api/health, during fan-out', busy],
    ];
    process.stdout.write(
      `fanout bench: ${clients} sockets (${perInstance.join(' + ')} on ${instances} API instance${instances > 1 ? 's' : ''}), ${events} agent:status events at ${rate}/s, ` +
        `open files limit ${limits}, clients connected in ${(connected.ms / 1000).toFixed(1)} s\n` +
        `  ${'measure'.padEnd(32)} ${'n'.padStart(7)} ${'p50'.padStart(9)} ${'p99'.padStart(9)} ${'max'.padStart(9)}\n` +
        rows
          .map(
            ([name, xs]) =>
              `  ${name.padEnd(32)} ${String(xs.length).padStart(7)} ${ms(pct(xs, 50))} ${ms(pct(xs, 99))} ${ms(xs.reduce((m, x) => Math.max(m, x), -Infinity))}`,
          )
          .join('\n') +
        `\n  deliveries ${receipt.length} of ${clients * events}; each client received ${Math.min(...perClient)} to ${Math.max(...perClient)} of ${events} events; ` +
        `lost ${lost} (${incomplete} sockets short), duplicated ${duplicated}` +
        `\n  load average idle ${loadIdle}, during ${loadDuring}` +
        `\n  ${pass ? 'PASS' : 'FAIL'}: NOTIFY → emit p99 ${pct(emit, 99).toFixed(1)} ms (target ≤ ${TARGET_P99_MS} ms), ${lost} lost, ${duplicated} duplicated\n`,
    );
    return { pass };
  } finally {
    if (child && child.exitCode === null) child.kill();
    for (const { api, app } of more) {
      await api.close();
      await app.close();
    }
    await stack.stop();
    await host.close();
  }
}

if (require.main === module) {
  benchFanout().then(
    ({ pass }) => process.exit(pass ? 0 : 1),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
