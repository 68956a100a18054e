/**
 * Execution benchmarks, one run, each against a baseline measured in the same run:
 *  1. dispatch: POST /api/agents/:id/execute → the host receives tools/call, p50/p95 over 200,
 *     against a bare workflow (agentProvision) whose activity calls the same host. Target ≤ 1.25.
 *  2. fan-out: host notification → receipt by each of 100 socket.io clients, p50/p99. Target p99 ≤ 50 ms.
 *  3. cancel: POST /api/executions/:id/cancel → the host sees notifications/cancelled, p50. Target ≤ 250 ms.
 *  4. load: 200 concurrent executions complete, every event log gapless, worker RSS ≤ 400 MB.
 * The worker runs as its own process (the real entry point), so its memory is its own.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { startAgentHost, type AgentHost } from '../host/server';
import type { AgentExecutionPayload } from '../domain/events';
import type { ClientToServerEvents, ServerToClientEvents } from '../api/realtime/socket-events';
import { apiCaller, startBenchStack, validatedAgent, type BenchStack, registerBenchAccount } from './stack';
import { executionHandle } from '../domain/temporal';
import { AGENT_PROVISION_WORKFLOW, type AgentProvisionWorkflow } from '../workflows/contracts/agent-provision';
import { eventMs, firstEvent, printBreakdown, type RunPoints, type TimedRun } from './history-breakdown';

/** A dispatch's hops in its workflow's history: started, its first task taken and completed, the activity scheduled. */
const dispatchPoints: RunPoints = (events) => [
  ['workflow started', eventMs(firstEvent(events, 'WorkflowExecutionStarted'))],
  ['first task taken', eventMs(firstEvent(events, 'WorkflowTaskStarted'))],
  ['first task completed', eventMs(firstEvent(events, 'WorkflowTaskCompleted'))],
  ['activity scheduled', eventMs(firstEvent(events, 'ActivityTaskScheduled'))],
];

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;
const sleep = (n: number) => new Promise((r) => setTimeout(r, n));

/** Node flags of the production worker (docker-compose.yml's worker command): a bounded old space keeps RSS near the live heap. */
const WORKER_NODE_FLAGS = (process.env.BENCH_WORKER_FLAGS ?? '--max-old-space-size=256').split(' ').filter(Boolean);

/** The production worker: compiled JS (`npm run build`) with the prebuilt workflow bundle it picks itself (tracing off: the untraced one). */
async function spawnWorker(stack: BenchStack): Promise<ChildProcess> {
  const root = path.join(__dirname, '..');
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'ignore' });
  const child = spawn(process.execPath, [...WORKER_NODE_FLAGS, path.join(root, 'dist', 'worker', 'main.js')], {
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

function peakRssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

export async function benchExecutions(): Promise<{ pass: boolean }> {
  const sentAt = new Map<string, number>();
  const host: AgentHost = await startAgentHost({
    token: `bench-${randomUUID()}`,
    stepDelayMs: 1,
    onEvent: (data) =>
      typeof data.text === 'string' && sentAt.set(`${data.executionId}:${data.text}`, performance.timeOrigin + performance.now()),
  });
  const stack = await startBenchStack();
  let worker: ChildProcess | undefined;
  const sockets: Socket<ServerToClientEvents, ClientToServerEvents>[] = [];
  const results: string[] = [];
  let pass = true;
  try {
    worker = await spawnWorker(stack);
    const base = stack.api.url;
    const call = apiCaller(base);
    const { accessToken: token, user } = await registerBenchAccount(call, 'bench@example.test');
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const agent = (maxConcurrency: number) => validatedAgent(call, token, server.id, { maxConcurrency });
    const execute = async (agentId: string, prompt: string) =>
      ((await call('POST', `/api/agents/${agentId}/execute`, { prompt }, token)) as { executionId: string }).executionId;
    const at = () => performance.timeOrigin + performance.now();

    // 1. Dispatch
    const dispatchAgent = await agent(50);
    const client = stack.deps.temporal.client;
    const viaApi: number[] = [];
    const apiOnly: number[] = [];
    const bare: number[] = [];
    /** For the hop-by-hop breakdown: each timed run, the request sent until the host's tools/call. */
    const runs: TimedRun[] = [];
    const bareRuns: TimedRun[] = [];
    for (let i = 0; i < 220; i++) {
      let t0 = at();
      const id = await execute(dispatchAgent, 'dispatch [steps:1]');
      if (i >= 20) apiOnly.push(at() - t0);
      const received = await host.waitForCall('execute_prompt', (c) => c.args.executionId === id, 30_000);
      if (i >= 20) viaApi.push(received.at - t0);
      if (i >= 20) runs.push({ workflowId: `execution-${id}`, sentAt: t0, answeredAt: received.at });
      // Each run finishes before the next is timed, for both series: dispatch latency, not
      // contention with the previous run's wrap-up.
      await executionHandle(stack.deps.temporal, id).result();
      t0 = at();
      const wf = `bench-bare-${randomUUID()}`;
      const bareRun = await client.workflow.start<AgentProvisionWorkflow>(AGENT_PROVISION_WORKFLOW, {
        taskQueue: stack.deps.config.temporal.taskQueue,
        workflowId: wf,
        args: [{ agentId: dispatchAgent, validatedBy: user.id }],
      });
      const provisioned = await host.waitForCall('provision_agent', (c) => c.at >= t0 && c.args.agentId === dispatchAgent, 30_000);
      if (i >= 20) bare.push(provisioned.at - t0);
      if (i >= 20) bareRuns.push({ workflowId: wf, sentAt: t0, answeredAt: provisioned.at });
      await bareRun.result();
    }
    // The last step of each is "→ answer": up to the host's tools/call.
    await printBreakdown(client, 'dispatch through the API', runs, dispatchPoints);
    await printBreakdown(client, 'bare workflow + activity', bareRuns, dispatchPoints);
    const dispatchRatio = pct(viaApi, 50) / pct(bare, 50);
    results.push(
      `1. dispatch (200): execute → host tools/call p50 ${ms(pct(viaApi, 50))} p95 ${ms(pct(viaApi, 95))}; bare workflow+activity → host p50 ${ms(pct(bare, 50))} p95 ${ms(pct(bare, 95))}; (the 202 itself p50 ${ms(pct(apiOnly, 50))}); ratio p50 ${dispatchRatio.toFixed(2)} (target ≤ 1.25)`,
    );
    pass &&= dispatchRatio <= 1.25;

    if (process.argv.includes('--dispatch-only')) return { pass };

    // 2. Fan-out to 100 subscribed socket.io clients
    const fanAgent = await agent(1);
    const latencies: number[] = [];
    for (let i = 0; i < 100; i++) {
      const socket: Socket<ServerToClientEvents, ClientToServerEvents> = connectSocket(base, {
        auth: { token },
        transports: ['websocket'],
        reconnection: false,
      });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => (socket.once('connect', () => resolve()), socket.once('connect_error', reject)));
      await new Promise((resolve) => socket.emit('subscribe:agent', { agentId: fanAgent }, resolve));
      socket.on('agent:execution', (e: AgentExecutionPayload) => {
        if (e.phase !== 'output' || !e.output) return;
        const sent = sentAt.get(`${e.executionId}:${e.output}`);
        if (sent) latencies.push(at() - sent);
      });
    }
    const fanExecution = await execute(fanAgent, 'fan out [steps:50] [delay:20]');
    for (let i = 0; i < 600 && latencies.length < 5000; i++) await sleep(50);
    results.push(
      `2. fan-out: ${latencies.length} deliveries (100 clients × 50 events of ${fanExecution.slice(0, 8)}) p50 ${ms(pct(latencies, 50))} p99 ${ms(pct(latencies, 99))} (target p99 ≤ 50 ms)`,
    );
    pass &&= latencies.length === 5000 && pct(latencies, 99) <= 50;
    sockets.splice(0).forEach((s) => s.close());

    // 3. Cancel
    const cancelAgent = await agent(5);
    const cancels: number[] = [];
    for (let i = 0; i < 30; i++) {
      const id = await execute(cancelAgent, 'cancel me [hang]');
      await host.waitForCall('execute_prompt', (c) => c.args.executionId === id, 30_000);
      await sleep(50);
      const t0 = at();
      await call('POST', `/api/executions/${id}/cancel`, undefined, token);
      await host.waitForCancellation(id, 10_000);
      const seen = host.cancellations.find((c) => c.executionId === id)!;
      cancels.push(seen.at - t0);
    }
    results.push(
      `3. cancel (30): POST cancel → host notifications/cancelled p50 ${ms(pct(cancels, 50))} p95 ${ms(pct(cancels, 95))} (target p50 ≤ 250 ms)`,
    );
    pass &&= pct(cancels, 50) <= 250;

    // 4. Load: 200 concurrent executions
    const loadAgents = await Promise.all([agent(50), agent(50), agent(50), agent(50)]);
    const rssBefore = peakRssMb(worker.pid!);
    const started = at();
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 10 }, async (_, lane) => {
        for (let i = lane; i < 200; i += 10) ids.push(await execute(loadAgents[i % 4]!, `load ${i} [steps:10] [delay:50]`));
      }),
    );
    const em = stack.deps.orm.em.fork();
    const conn = em.getConnection();
    for (let i = 0; i < 1200; i++) {
      const [row] = await conn.execute<{ n: string }[]>(
        `select count(*) as n from executions where id in (${ids.map(() => '?').join(',')}) and status in ('COMPLETED','FAILED','CANCELLED','TIMED_OUT')`,
        ids,
      );
      if (Number(row!.n) === ids.length) break;
      await sleep(100);
    }
    const elapsed = at() - started;
    const statuses = await conn.execute<{ status: string; n: string }[]>(
      `select status, count(*) as n from executions where id in (${ids.map(() => '?').join(',')}) group by status`,
      ids,
    );
    const gaps = await conn.execute<{ id: string }[]>(
      `select execution_id as id from execution_events where execution_id in (${ids.map(() => '?').join(',')}) group by execution_id having count(*) <> max(seq) or min(seq) <> 1`,
      ids,
    );
    const rss = peakRssMb(worker.pid!);
    const completed = Number(statuses.find((s) => s.status === 'COMPLETED')?.n ?? 0);
    results.push(
      `4. load: ${completed}/200 COMPLETED in ${(elapsed / 1000).toFixed(1)} s (${JSON.stringify(Object.fromEntries(statuses.map((s) => [s.status, Number(s.n)])))}), event logs with gaps: ${gaps.length}, worker peak RSS ${rss.toFixed(0)} MB (before load ${rssBefore.toFixed(0)} MB; target ≤ 400 MB)`,
    );
    pass &&= completed === 200 && gaps.length === 0 && rss <= 400;
  } finally {
    process.stdout.write(`executions bench\n${results.map((r) => `  ${r}`).join('\n')}\n`);
    sockets.forEach((s) => s.close());
    if (worker && worker.exitCode === null) {
      worker.kill('SIGTERM');
      await new Promise((r) => worker!.once('exit', r));
    }
    await stack.stop();
    await host.close();
  }
  return { pass };
}

if (require.main === module) {
  benchExecutions()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
