/**
 * Scale: N concurrent task-backed runs (default 1,000) started through the API, on TWO worker
 * processes (the compiled worker/main.ts, as in docker-compose) against the reference host in
 * task mode, each run `[steps:S] [delay:D]` (default 10 × 300 ms: 3 s of real events). Enough
 * agents of 50 slots that no run waits for a slot.
 *  1. steady: every run COMPLETED, no gap in any event log (seq 1..n), one `execute_prompt` per
 *     execution on the host, each worker's peak RSS ≤ 500 MB; throughput and time to first event.
 *  2. crash: the same, one worker SIGKILLed when half the runs are in flight on the host (or,
 *     if they never are, once every run is posted): none lost (all final), none run twice on the
 *     host (its events per execution; a repeated `execute_prompt`, which the host answers with
 *     the run's task, and re-attaches are counted), the survivor carrying the rest.
 *
 *   npm run bench -- scale [--runs=1000] [--steps=10] [--delay=300] [--phase-minutes=12] [--no-build]
 * (`--no-build`: the worker from the dist/ already built.)
 * Worker settings come from the environment (WORKER_MAX_CONCURRENT_ACTIVITIES, DB_POOL_MAX, …).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Execution, FINAL_EXECUTION_STATUSES } from '../entities';
import { startAgentHost, type AgentHost } from '../host/server';
import { apiCaller, startBenchStack, validatedAgent, type BenchStack, registerBenchAccount } from './stack';

const option = (name: string, fallback: number) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const RUNS = option('runs', 1000);
const STEPS = option('steps', 10);
const DELAY_MS = option('delay', 300);
const PHASE_MS = option('phase-minutes', 12) * 60_000;
/** The API's limit on an agent's slots (agents.schemas.ts). */
const AGENT_SLOTS = 50;
/** POSTs in flight at once while starting a phase's runs. */
const LANES = 20;
const RSS_TARGET_MB = 500;

const pct = (xs: number[], p: number) =>
  xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]! : NaN;
const sec = (n: number) => `${(n / 1000).toFixed(2)} s`;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));
const load = () =>
  os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(' ');

/**
 * The production worker: compiled JS (`npm run build`, done once by the caller) with the prebuilt
 * workflow bundle it picks (without the tracing interceptors, tracing being off; set
 * WORKFLOW_BUNDLE_PATH=dist/workflow-bundle.js to run the traced one).
 */
function spawnWorker(stack: BenchStack, name: string): Promise<ChildProcess> {
  const root = path.join(__dirname, '..');
  const flags = (process.env.BENCH_WORKER_FLAGS ?? '--max-old-space-size=256').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...flags, path.join(root, 'dist', 'worker', 'main.js')], {
    cwd: root,
    env: {
      ...process.env,
      ...stack.env,
      LOG_LEVEL: 'info',
      LOG_PRETTY: 'false',
      TEMPORAL_TASK_QUEUE: stack.deps.config.temporal.taskQueue,
      // As docker-compose's worker (docs/benchmarks.md, "Sizing"); MALLOC_ARENA_MAX in the environment overrides it.
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
      // Two workers on one machine: their metrics endpoints would want the same ports.
      WORKER_METRICS_PORT: '0',
      WORKER_TEMPORAL_METRICS_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise<ChildProcess>((resolve, reject) => {
    let ready = false;
    // Read stdout to the end (a full pipe would stall the worker); watch it only for readiness.
    child.stdout!.on('data', (chunk: Buffer) => {
      if (ready || !chunk.toString().includes('worker ready')) return;
      ready = true;
      resolve(child);
    });
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`worker ${name} exited with ${code ?? signal}`));
    });
  });
}

/** Peak resident memory of each live worker, sampled every 250 ms (a killed process's high-water mark dies with it). */
function rssSampler(workers: Record<string, ChildProcess>) {
  const peak: Record<string, number> = Object.fromEntries(Object.keys(workers).map((k) => [k, 0]));
  const read = () => {
    for (const [name, child] of Object.entries(workers)) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      try {
        const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]);
        peak[name] = Math.max(peak[name]!, kb / 1024);
      } catch {
        // The process went between the check and the read.
      }
    }
  };
  const timer = setInterval(read, 250);
  return {
    peak,
    stop() {
      read();
      clearInterval(timer);
    },
  };
}

interface PhaseResult {
  name: string;
  statuses: Record<string, number>;
  notCompleted: string[];
  lost: number;
  gaps: number;
  duplicated: number;
  missing: number;
  /** Runs whose host events outnumber one run's: the host ran them more than once. */
  ranTwice: number;
  oneRun: number;
  reattachedRuns: number;
  reattachEvents: number;
  /** Runs whose activity ran again without a task to re-attach to (a `retry` status event). */
  restarted: number;
  postLatency: number[];
  /** POSTs answered 503 (Temporal did not take the start in time) and sent again. */
  retried503: number;
  peakRss: Record<string, number>;
  peakInFlight: number;
  postMs: number;
  wallMs: number;
  throughput: number;
  firstStored: number[];
  firstSent: number[];
  killNote?: string;
  loadBefore: string;
  loadAfter: string;
}

export async function benchScale(): Promise<{ pass: boolean }> {
  const firstSentAt = new Map<string, number>();
  /** Events the host sent per execution: a run the host ran twice sends twice one run's. */
  const eventsSent = new Map<string, number>();
  const host: AgentHost = await startAgentHost({
    token: `bench-${randomUUID()}`,
    onEvent: (data) => {
      const id = data.executionId;
      if (typeof id !== 'string') return;
      if (!firstSentAt.has(id)) firstSentAt.set(id, Date.now());
      eventsSent.set(id, (eventsSent.get(id) ?? 0) + 1);
    },
  });
  // The API's pool follows the workers' when DB_POOL_MAX is set for the run; its metrics port
  // stays closed (another stack on this machine may hold the default one).
  // A phase on a loaded machine outlasts the default 15-minute access token.
  const stack = await startBenchStack({
    METRICS_PORT: '0',
    ACCESS_TOKEN_TTL_SECONDS: '7200',
    ...(process.env.DB_POOL_MAX ? { DB_POOL_MAX: process.env.DB_POOL_MAX } : {}),
  });
  const workers: Record<string, ChildProcess> = {};
  const results: PhaseResult[] = [];
  const notes: string[] = [];
  try {
    if (!process.argv.includes('--no-build')) execFileSync('npm', ['run', 'build'], { cwd: path.join(__dirname, '..'), stdio: 'ignore' });
    [workers.A, workers.B] = await Promise.all([spawnWorker(stack, 'A'), spawnWorker(stack, 'B')]);
    const call = apiCaller(stack.api.url);
    const { accessToken: token } = await registerBenchAccount(call, 'bench-scale@example.test');
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const agents = async (count: number) =>
      Promise.all(Array.from({ length: count }, () => validatedAgent(call, token, server.id, { maxConcurrency: AGENT_SLOTS })));
    const conn = stack.deps.orm.em.fork().getConnection();

    const phase = async (name: string, kill: boolean): Promise<PhaseResult> => {
      const agentIds = await agents(Math.ceil(RUNS / AGENT_SLOTS));
      const loadBefore = load();
      const rss = rssSampler(workers);
      const postedAt = new Map<string, number>();
      const postLatency: number[] = [];
      let peakInFlight = 0;
      let killNote: string | undefined;
      let posting = true;
      let retried503 = 0;
      const began = Date.now();
      // The watcher samples the runs in flight on the host while posting; in the crash phase it
      // kills worker A at half the runs in flight, or once every run is posted, whichever first.
      const watcher = (async () => {
        for (; posting || (kill && !killNote); await sleep(50)) {
          const inFlight = host.running();
          peakInFlight = Math.max(peakInFlight, inFlight);
          if (kill && !killNote && (inFlight >= RUNS / 2 || !posting)) {
            const [done] = await conn.execute<{ n: string }[]>(
              `select count(*) as n from executions where agent_id in (${agentIds.map(() => '?').join(',')}) and status in (${FINAL_EXECUTION_STATUSES.map(() => '?').join(',')})`,
              [...agentIds, ...FINAL_EXECUTION_STATUSES],
            );
            workers.A!.kill('SIGKILL');
            killNote = `worker A SIGKILLed ${sec(Date.now() - began)} after the first POST, ${postedAt.size} runs posted, ${inFlight} in flight on the host, ${done!.n} final`;
          }
        }
      })();
      let next = 0;
      await Promise.all(
        Array.from({ length: LANES }, async () => {
          for (let i = next++; i < RUNS; i = next++) {
            const t0 = Date.now();
            const post = () =>
              call(
                'POST',
                `/api/agents/${agentIds[i % agentIds.length]}/execute`,
                { prompt: `scale ${name} ${i} [steps:${STEPS}] [delay:${DELAY_MS}]` },
                token,
              ) as Promise<{ executionId: string }>;
            // A start Temporal did not take in time answers 503 (the run is not started): the client
            // tries again, as the API asks; the retries are counted.
            let started: { executionId: string } | undefined;
            for (let attempt = 1; !started; attempt++) {
              started = await post().catch(async (error: unknown) => {
                if (attempt >= 10 || !(error instanceof Error && / → 503 /.test(error.message))) throw error;
                retried503++;
                await sleep(1000);
                return undefined;
              });
            }
            const { executionId } = started;
            postedAt.set(executionId, t0);
            postLatency.push(Date.now() - t0);
          }
        }),
      );
      const postMs = Date.now() - began;
      posting = false;
      await watcher;

      const ids = [...postedAt.keys()];
      const idList = ids.map(() => '?').join(',');
      const finalCount = async () =>
        Number(
          (
            await conn.execute<{ n: string }[]>(
              `select count(*) as n from executions where id in (${idList}) and status in (${FINAL_EXECUTION_STATUSES.map(() => '?').join(',')})`,
              [...ids, ...FINAL_EXECUTION_STATUSES],
            )
          )[0]!.n,
        );
      while ((await finalCount()) < ids.length && Date.now() - began < PHASE_MS) {
        peakInFlight = Math.max(peakInFlight, host.running());
        await sleep(250);
      }
      rss.stop();
      const rows = await stack.deps.orm.em.fork().find(Execution, { id: { $in: ids } }, { fields: ['status', 'error', 'completedAt'] });
      const statuses: Record<string, number> = {};
      for (const r of rows) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      const final = rows.filter((r) => FINAL_EXECUTION_STATUSES.includes(r.status));
      const notCompleted = rows.filter((r) => r.status !== 'COMPLETED').map((r) => `${r.id.slice(0, 8)} ${r.status}: ${r.error ?? '-'}`);
      const gaps = await conn.execute<{ id: string }[]>(
        `select execution_id as id from execution_events where execution_id in (${idList}) group by execution_id having count(*) <> max(seq) or min(seq) <> 1`,
        ids,
      );
      const firstEvents = await conn.execute<{ id: string; at: Date }[]>(
        `select execution_id as id, min(created_at) as at from execution_events where execution_id in (${idList}) and type <> 'status' group by execution_id`,
        ids,
      );
      const [reattach] = await conn.execute<{ runs: string; events: string; restarted: string }[]>(
        `select count(distinct execution_id) filter (where payload->'data'->>'reattach' = 'true') as runs,
                count(*) filter (where payload->'data'->>'reattach' = 'true') as events,
                count(distinct execution_id) filter (where payload->'data'->>'retry' = 'true') as restarted
           from execution_events where execution_id in (${idList}) and type = 'status'`,
        ids,
      );
      const prompts = new Map<string, number>();
      for (const c of host.calls) {
        const id = c.args.executionId;
        if (c.tool === 'execute_prompt' && typeof id === 'string' && postedAt.has(id)) prompts.set(id, (prompts.get(id) ?? 0) + 1);
      }
      // One run's events: the count most runs of the phase sent.
      const counts = ids.map((id) => eventsSent.get(id) ?? 0);
      const oneRun = pct(counts, 50);
      const ends = final.map((r) => r.completedAt?.getTime() ?? 0);
      const wallMs = Math.max(...ends) - began;
      return {
        name,
        statuses,
        notCompleted,
        lost: ids.length - final.length,
        gaps: gaps.length,
        duplicated: [...prompts.values()].filter((n) => n > 1).length,
        missing: ids.filter((id) => !prompts.has(id)).length,
        ranTwice: counts.filter((n) => n > oneRun).length,
        oneRun,
        reattachedRuns: Number(reattach!.runs),
        reattachEvents: Number(reattach!.events),
        restarted: Number(reattach!.restarted),
        postLatency,
        retried503,
        peakRss: { ...rss.peak },
        peakInFlight,
        postMs,
        wallMs,
        throughput: final.length / (wallMs / 1000),
        firstStored: firstEvents.map((e) => new Date(e.at).getTime() - postedAt.get(e.id)!),
        firstSent: ids.filter((id) => firstSentAt.has(id)).map((id) => firstSentAt.get(id)! - postedAt.get(id)!),
        killNote,
        loadBefore,
        loadAfter: load(),
      };
    };

    results.push(await phase('steady', false));
    results.push(await phase('crash', true));
  } catch (error) {
    notes.push(`aborted: ${error instanceof Error ? error.message : String(error)}`);
    // Said at once: tearing the stack down can fail in its turn before the table is printed.
    process.stderr.write(`scale bench ${notes.at(-1)!}\n`);
  } finally {
    for (const child of Object.values(workers)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stack.stop();
    await host.close();
  }

  const rows: [string, ...string[]][] = [
    ['', ...results.map((r) => r.name)],
    ['runs (steps × delay)', ...results.map(() => `${RUNS} (${STEPS} × ${DELAY_MS} ms)`)],
    ['final status', ...results.map((r) => JSON.stringify(r.statuses))],
    ['lost (not final)', ...results.map((r) => String(r.lost))],
    ['event logs with gaps', ...results.map((r) => String(r.gaps))],
    ['executions with > 1 / no execute_prompt call', ...results.map((r) => `${r.duplicated} / ${r.missing}`)],
    ['runs the host ran more than once', ...results.map((r) => `${r.ranTwice} (one run = ${r.oneRun} events)`)],
    ['runs re-attached (events) / restarted', ...results.map((r) => `${r.reattachedRuns} (${r.reattachEvents}) / ${r.restarted}`)],
    ['peak runs in flight on the host', ...results.map((r) => String(r.peakInFlight))],
    ['peak RSS A / B (target ≤ 500 MB)', ...results.map((r) => `${r.peakRss.A!.toFixed(0)} / ${r.peakRss.B!.toFixed(0)} MB`)],
    ['all POSTs answered in', ...results.map((r) => sec(r.postMs))],
    ['POST /execute p50 / p99', ...results.map((r) => `${sec(pct(r.postLatency, 50))} / ${sec(pct(r.postLatency, 99))}`)],
    ['POSTs answered 503 and sent again', ...results.map((r) => String(r.retried503))],
    ['first POST → last run final', ...results.map((r) => sec(r.wallMs))],
    ['throughput', ...results.map((r) => `${r.throughput.toFixed(1)} runs/s`)],
    ['POST → first host event stored p50 / p99', ...results.map((r) => `${sec(pct(r.firstStored, 50))} / ${sec(pct(r.firstStored, 99))}`)],
    ['POST → host sends first event p50 / p99', ...results.map((r) => `${sec(pct(r.firstSent, 50))} / ${sec(pct(r.firstSent, 99))}`)],
    ['load average before → after', ...results.map((r) => `${r.loadBefore} → ${r.loadAfter}`)],
  ];
  const width = rows.map((r) => r.map((c) => c.length));
  const cols = rows[0]!.map((_, i) => Math.max(...width.map((w) => w[i] ?? 0)));
  const steady = results.find((r) => r.name === 'steady');
  const crash = results.find((r) => r.name === 'crash');
  const fits = (r: PhaseResult) => Object.values(r.peakRss).every((mb) => mb <= RSS_TARGET_MB);
  const steadyPass =
    !!steady &&
    steady.statuses.COMPLETED === RUNS &&
    steady.gaps === 0 &&
    steady.duplicated === 0 &&
    steady.ranTwice === 0 &&
    steady.missing === 0 &&
    fits(steady);
  // A repeated execute_prompt after the kill is allowed (the host answers it with the run's task); a second run is not.
  const crashPass = !!crash && crash.lost === 0 && crash.gaps === 0 && crash.ranTwice === 0 && crash.missing === 0;
  process.stdout.write(
    [
      `scale bench: ${RUNS} task-backed runs on two worker processes (${os.cpus().length} cores)`,
      ...rows.map((r) => `  ${r.map((c, i) => c.padEnd(cols[i]!)).join('  ')}`),
      ...results.flatMap((r) => (r.killNote ? [`  ${r.name}: ${r.killNote}`] : [])),
      ...results.flatMap((r) => r.notCompleted.slice(0, 20).map((line) => `  ${r.name} not COMPLETED: ${line}`)),
      ...notes.map((n) => `  ${n}`),
      `  ${steadyPass ? 'PASS' : 'FAIL'} steady (all COMPLETED, no gap, one execute_prompt each, RSS ≤ ${RSS_TARGET_MB} MB); ${crashPass ? 'PASS' : 'FAIL'} crash (none lost, no gap, none run twice)`,
      '',
    ].join('\n'),
  );
  return { pass: steadyPass && crashPass };
}

if (require.main === module) {
  benchScale().then(
    (r) => process.exit(r.pass ? 0 : 1),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
