/**
 * Delegation overhead (issue 22), against a direct execute measured in the same run: N pairs
 * (`--pairs=N`, default 60), interleaved, one at a time, after 10 pairs that warm up:
 *  a. direct: POST /api/agents/:worker/execute → the run's first event at the host;
 *  b. delegated: a MASTER run whose script says `[delegate:WORKER:...]` → the child's first
 *     event at the host, timed from the parent's first event (its engine's delegate call starts
 *     right after it) and, for reference, from the parent's request.
 * Target: delegated p50 (from the parent's first event) ≤ direct p50 + 50 ms. Both start with
 * the same dispatch (a workflow, an activity, the host's tools/call); delegation adds the
 * engine's MCP connection to /mcp, the token check and the parent workflow's Update.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { startAgentHost, type AgentHost } from '../host/server';
import { openFleet } from '../host/fleet-client';
import type { FleetAccess } from '../lib/host-contract';
import { executionHandle } from '../domain/temporal';
import { createWorkerDeps } from '../worker/deps';
import { createWorker } from '../worker/worker';
import { apiCaller, startBenchStack, registerBenchAccount } from './stack';
import { eventMs, firstEvent as historyEvent, localActivityScheduledMs, type EVENT } from './history-breakdown';

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;
const uptime = () => execFileSync('uptime', { encoding: 'utf8' }).trim();

export async function benchDelegation(): Promise<{ pass: boolean }> {
  const pairs = Number(process.argv.find((a) => a.startsWith('--pairs='))?.slice('--pairs='.length) ?? 60);
  const at = () => performance.timeOrigin + performance.now();
  // Each run's first event as the host sends it, and who waits for it.
  const firstEvents = new Map<string, number>();
  const waiters = new Map<string, (at: number) => void>();
  const host: AgentHost = await startAgentHost({
    token: `bench-${randomUUID()}`,
    stepDelayMs: 1,
    onEvent: (data) => {
      const id = data.executionId;
      if (typeof id !== 'string' || firstEvents.has(id)) return;
      const now = at();
      firstEvents.set(id, now);
      waiters.get(id)?.(now);
    },
  });
  const firstEvent = (id: string) =>
    new Promise<number>((resolve, reject) => {
      const seen = firstEvents.get(id);
      if (seen !== undefined) return resolve(seen);
      const timer = setTimeout(() => reject(new Error(`no event of ${id} in 60 s`)), 60_000);
      waiters.set(id, (t) => (clearTimeout(timer), waiters.delete(id), resolve(t)));
    });

  const results: string[] = [`uptime at start: ${uptime()}`];
  let pass = false;
  const stack = await startBenchStack();
  let stopWorker: (() => Promise<void>) | undefined;
  try {
    // The worker sends runs this API's /mcp (it listens on a free port), so it is built here, not by stack.startWorker.
    const config = stack.deps.config;
    const { deps: workerDeps, close } = await createWorkerDeps(
      { ...config, delegation: { ...config.delegation, mcpUrl: new URL('/mcp', stack.api.url).toString() } },
      { orm: stack.deps.orm, logger: stack.deps.logger, temporalClient: stack.deps.temporal.client },
    );
    const worker = await createWorker(workerDeps);
    const running = worker.run();
    stopWorker = async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
      await close();
    };

    const call = apiCaller(stack.api.url);
    const { accessToken: token } = await registerBenchAccount(call, 'delegation-bench@example.test');
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const agent = async (fields: Record<string, unknown>) => {
      const created = (await call('POST', '/api/agents', { serverId: server.id, maxConcurrency: 5, ...fields }, token)) as { id: string };
      await call('POST', `/api/agents/${created.id}/validate`, undefined, token);
      return created.id;
    };
    const master = await agent({ name: 'lead', role: 'MASTER' });
    const subordinate = await agent({ name: 'bw', supervisorId: master });
    const execute = async (agentId: string, prompt: string) =>
      ((await call('POST', `/api/agents/${agentId}/execute`, { prompt }, token)) as { executionId: string }).executionId;
    const ended = (id: string) => executionHandle(stack.deps.temporal, id).result();

    const direct: number[] = [];
    const fromParentEvent: number[] = [];
    const fromParentRequest: number[] = [];
    // Where the time goes: up to the host's tools/call execute_prompt of the (child) run.
    const directToHost: number[] = [];
    const delegatedToHost: number[] = [];
    // Both paths, hop by hop, from the bench's clock and the workflows' histories (read after the loop).
    const directRuns: Array<{ id: string; sentAt: number; hostAt: number; firstAt: number }> = [];
    const delegatedRuns: Array<{ parent: string; child: string; parentFirst: number; hostAt: number; firstAt: number }> = [];
    // Ten pairs warm up (first MCP connections, workflow code loaded, the JIT), not counted: with
    // three, a run of 30 pairs still had a colder half, and its p50s moved by ±10 ms between runs.
    for (let i = -10; i < pairs; i++) {
      const directAt = at();
      const run = await execute(subordinate, `direct ${i}`);
      const directFirst = await firstEvent(run);
      const directCall = (await host.waitForCall('execute_prompt', (c) => c.args.executionId === run, 60_000)).at;
      await ended(run);

      const tag = `delegated ${i} ${randomUUID()}`;
      const parentAt = at();
      const parent = await execute(master, `[delegate:bw:${tag}]`);
      const parentFirst = await firstEvent(parent);
      const childCall = await host.waitForCall('execute_prompt', (c) => c.args.prompt === tag, 60_000);
      const child = String(childCall.args.executionId);
      const childFirst = await firstEvent(child);
      await ended(parent);
      if (i < 0) continue;
      direct.push(directFirst - directAt);
      directToHost.push(directCall - directAt);
      delegatedToHost.push(childCall.at - parentFirst);
      fromParentEvent.push(childFirst - parentFirst);
      fromParentRequest.push(childFirst - parentAt);
      directRuns.push({ id: run, sentAt: directAt, hostAt: directCall, firstAt: directFirst });
      delegatedRuns.push({ parent, child, parentFirst, hostAt: childCall.at, firstAt: childFirst });
    }
    const directP50 = pct(direct, 50);
    const delegatedP50 = pct(fromParentEvent, 50);
    pass = delegatedP50 <= directP50 + 50;
    results.push(
      `a. direct (${direct.length}): execute → first event p50 ${ms(directP50)} p90 ${ms(pct(direct, 90))}`,
      `b. delegated (${fromParentEvent.length}): parent's first event → child's first event p50 ${ms(delegatedP50)} p90 ${ms(pct(fromParentEvent, 90))}` +
        ` (from the parent's request: p50 ${ms(pct(fromParentRequest, 50))} p90 ${ms(pct(fromParentRequest, 90))})`,
      `   to the host's execute_prompt: direct p50 ${ms(pct(directToHost, 50))}, delegated p50 ${ms(pct(delegatedToHost, 50))}`,
      `delegated − direct: p50 ${ms(delegatedP50 - directP50)} p90 ${ms(pct(fromParentEvent, 90) - pct(direct, 90))} (target p50 ≤ +50 ms): ${pass ? 'PASS' : 'FAIL'}`,
    );

    const history = async (id: string) =>
      (await stack.deps.temporal.client.workflow.getHandle(`execution-${id}`).fetchHistory()).events ?? [];
    const steps = new Map<string, number[]>();
    const addSteps = (points: Array<[string, number | undefined]>) => {
      let previous: [string, number] | undefined;
      for (const [name, time] of points) {
        if (time === undefined) continue;
        if (previous) {
          const step = `${previous[0]} → ${name}`;
          steps.set(step, [...(steps.get(step) ?? []), time - previous[1]]);
        }
        previous = [name, time];
      }
    };
    const at_ = (events: Awaited<ReturnType<typeof history>>, type: keyof typeof EVENT) => eventMs(historyEvent(events, type));
    for (const run of directRuns) {
      const events = await history(run.id);
      addSteps([
        ['direct: request', run.sentAt],
        ['started', at_(events, 'WorkflowExecutionStarted')],
        ['task started', at_(events, 'WorkflowTaskStarted')],
        ['task completed', at_(events, 'WorkflowTaskCompleted')],
        ['activity started', at_(events, 'ActivityTaskStarted')],
        ['host call', run.hostAt],
        ['first event', run.firstAt],
      ]);
    }
    for (const run of delegatedRuns) {
      const parent = await history(run.parent);
      const child = await history(run.child);
      const accepted = historyEvent(parent, 'WorkflowExecutionUpdateAccepted');
      const after = parent.slice(parent.indexOf(accepted!));
      addSteps([
        ["delegated: parent's first event", run.parentFirst],
        ['update accepted', eventMs(accepted)],
        ['record scheduled', localActivityScheduledMs(after.find((e) => e.eventType === 25))],
        ['child initiated', at_(after, 'StartChildWorkflowExecutionInitiated')],
        ['child started', at_(child, 'WorkflowExecutionStarted')],
        ["child's task started", at_(child, 'WorkflowTaskStarted')],
        ["child's task completed", at_(child, 'WorkflowTaskCompleted')],
        ["child's activity started", at_(child, 'ActivityTaskStarted')],
        ["child's host call", run.hostAt],
        ["child's first event", run.firstAt],
      ]);
    }
    results.push('   hop by hop, p50 (bench clock and workflow histories):');
    for (const [step, xs] of steps) results.push(`     ${step.padEnd(52)} ${ms(pct(xs, 50))}`);

    // Where the difference goes, part 1: the engine's MCP session to /mcp (initialize, then a
    // tool call, each checking the run token), timed with a hanging MASTER run's own token.
    const hanging = await execute(master, `[hang] ${randomUUID()}`);
    const fleet = (await host.waitForCall('execute_prompt', (c) => c.args.executionId === hanging, 60_000)).args.fleet as FleetAccess;
    const connects: number[] = [];
    const lists: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = at();
      const client = await openFleet(fleet);
      connects.push(at() - t);
      const l = at();
      await client.listSubordinates();
      lists.push(at() - l);
      await client.close();
    }
    await call('POST', `/api/executions/${hanging}/cancel`, undefined, token);
    await ended(hanging).catch(() => undefined);
    results.push(
      `   the engine's MCP session (20): connect p50 ${ms(pct(connects, 50))}, then list_subordinates p50 ${ms(pct(lists, 50))}`,
    );
  } finally {
    results.push(`uptime at end: ${uptime()}`);
    process.stdout.write(`delegation bench\n${results.map((r) => `  ${r}`).join('\n')}\n`);
    await stopWorker?.();
    await stack.stop();
    await host.close();
  }
  return { pass };
}

if (require.main === module) {
  benchDelegation()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
