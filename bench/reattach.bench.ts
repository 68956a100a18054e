/**
 * Re-attach cost: a 10 s run (`[steps:100] [delay:100]`) whose worker process is SIGKILLed at a
 * random point (uniform 1–9 s into the run), a new worker started at once. The extra wall time
 * per run is measured against undisturbed runs of the same run, on a task-capable host (the run
 * re-attaches to its task) and on a plain host (the run starts over), in the same process.
 * `RUNS` runs per series start staggered so that one kill lands at a different point of each.
 * Asserts: every disturbed run COMPLETED, and the task host received exactly one
 * `execute_prompt` per execution. Target: the task host's p50 extra below the plain host's.
 *
 *   node --import tsx bench/reattach.bench.ts [--runs=20]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { Execution } from '../entities';
import { startAgentHost, type AgentHost } from '../host/server';
import { apiCaller, startBenchStack, validatedAgent, type BenchStack, registerBenchAccount } from './stack';

const RUNS = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? 20);
const PROMPT = 'bench [steps:100] [delay:100]';
const RUN_MS = 10_000;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const s = (n: number) => `${(n / 1000).toFixed(2)} s`;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

/** The real worker entry point in its own process (so it can be SIGKILLed), on the stack's task queue. */
function spawnWorker(stack: BenchStack): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'worker', 'main.ts')], {
    cwd: path.join(__dirname, '..'),
    env: {
      ...process.env,
      ...stack.env,
      LOG_LEVEL: 'info',
      LOG_PRETTY: 'false',
      TEMPORAL_TASK_QUEUE: stack.deps.config.temporal.taskQueue,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise<ChildProcess>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('worker ready')) resolve(child);
    });
    child.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
  });
}

export async function benchReattach(): Promise<{ pass: boolean }> {
  const taskHost: AgentHost = await startAgentHost({ token: `bench-${randomUUID()}` });
  const plainHost: AgentHost = await startAgentHost({ token: `bench-${randomUUID()}`, tasks: false });
  const stack = await startBenchStack();
  let worker: ChildProcess | undefined;
  let pass = true;
  try {
    worker = await spawnWorker(stack);
    const call = apiCaller(stack.api.url);
    const { accessToken: token } = await registerBenchAccount(call, 'bench-reattach@example.test');
    const agentOn = async (host: AgentHost) => {
      const server = (await call(
        'POST',
        '/api/servers',
        { name: `bench-${randomUUID().slice(0, 8)}`, url: host.url, masterToken: host.token },
        token,
      )) as { id: string };
      return validatedAgent(call, token, server.id, { maxConcurrency: RUNS });
    };
    const taskAgent = await agentOn(taskHost);
    const plainAgent = await agentOn(plainHost);
    const execute = async (agentId: string) =>
      ((await call('POST', `/api/agents/${agentId}/execute`, { prompt: PROMPT }, token)) as { executionId: string }).executionId;

    /** Wall time of each run (started → completed, from its row), once all are final. */
    const durations = async (ids: string[]) => {
      for (;;) {
        const rows = await stack.deps.orm.em.fork().find(Execution, { id: { $in: ids } });
        if (rows.every((r) => ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(r.status))) {
          const failed = rows.filter((r) => r.status !== 'COMPLETED');
          if (failed.length)
            throw new Error(`${failed.length} runs did not complete: ${failed.map((r) => `${r.status} ${r.error}`).join('; ')}`);
          return rows.map((r) => r.completedAt!.getTime() - r.startedAt!.getTime());
        }
        await sleep(200);
      }
    };

    /**
     * RUNS runs started staggered so that one moment lands 1–9 s (uniform) into each; with
     * `kill`, the worker is SIGKILLed at that moment and a new one started at once. The
     * undisturbed series uses the same staggering, so both carry the same load.
     */
    const series = async (agentId: string, kill: boolean) => {
      const killAt = Date.now() + RUN_MS;
      const intoRun = Array.from({ length: RUNS }, () => 1000 + Math.random() * 8000).sort((a, b) => b - a);
      const ids: string[] = [];
      for (const offset of intoRun) {
        await sleep(Math.max(0, killAt - offset - Date.now()));
        ids.push(await execute(agentId));
      }
      if (kill) {
        await sleep(Math.max(0, killAt - Date.now()));
        const dying = worker!;
        dying.kill('SIGKILL');
        await new Promise((r) => dying.once('exit', r));
        worker = await spawnWorker(stack);
      }
      return { ids, durations: await durations(ids) };
    };
    // Warm-up (connections, the worker's first workflows), so the first series measured is not the cold one.
    await durations(await Promise.all([taskAgent, plainAgent].flatMap((agentId) => Array.from({ length: 4 }, () => execute(agentId)))));
    const taskBase = pct((await series(taskAgent, false)).durations, 50);
    const onTask = await series(taskAgent, true);
    const plainBase = pct((await series(plainAgent, false)).durations, 50);
    const onPlain = await series(plainAgent, true);
    const taskExtra = onTask.durations.map((d) => d - taskBase);
    const plainExtra = onPlain.durations.map((d) => d - plainBase);
    const prompts = onTask.ids.map((id) => taskHost.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === id).length);
    const promptsSent = prompts.reduce((a, b) => a + b, 0);
    const ratio = pct(taskExtra, 50) / pct(plainExtra, 50);

    process.stdout.write(
      [
        `re-attach (${RUNS} runs of ${s(RUN_MS)}, worker SIGKILLed 1–9 s in, a new one started at once):`,
        `  undisturbed p50: task host ${s(taskBase)}, plain host ${s(plainBase)}`,
        `  extra per run, task host (re-attach): p50 ${s(pct(taskExtra, 50))} p95 ${s(pct(taskExtra, 95))}`,
        `  extra per run, plain host (runs again): p50 ${s(pct(plainExtra, 50))} p95 ${s(pct(plainExtra, 95))}`,
        `  ratio task/plain p50 ${ratio.toFixed(2)} (target < 1)`,
        `  execute_prompt received by the task host: ${promptsSent} for ${RUNS} executions (must be equal)`,
        '',
      ].join('\n'),
    );
    pass = promptsSent === RUNS && prompts.every((n) => n === 1) && ratio < 1;
  } finally {
    worker?.kill('SIGKILL');
    await stack.stop();
    await taskHost.close();
    await plainHost.close();
  }
  return { pass };
}

if (require.main === module) {
  benchReattach().then(
    (r) => process.exit(r.pass ? 0 : 1),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
