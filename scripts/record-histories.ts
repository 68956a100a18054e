/**
 * `npm run histories:record [name-prefix ...]`: records test/histories/ from real runs of every
 * workflow type (a real PostgreSQL, Temporal dev server, reference MCP hosts and worker, driven
 * through the API as a person would), which test/workflow-replay.test.ts replays on the current
 * workflow code. With prefixes, only the histories whose names start with one are written.
 *
 * Re-record after a deliberate change of a workflow's commands that is behind `patched()` (add
 * the new behaviour's histories; keep the old ones, which are what the patch protects), or when a
 * scenario is added. Never re-record to make a failing replay pass: that failure is a run in
 * flight that the new code would break. The histories recorded before a patch come from the code
 * of that time (scripts/histories/before-*.ts, run on a checkout of the commit before it).
 */
import { randomUUID } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import type { AgentHost } from '../host/server';
import { HOST_TOOLS } from '../lib/host-contract';
import { httpFor, registerAccount } from '../test/api';
import { activeAgent, registerHost, waitFor } from '../test/fleet';
import { createTestContext, spawnWorkerProcess, startTestWorker } from '../test/harness';
import { startMcpServer } from '../test/mcp-servers';
import { taskApi } from '../test/tasks';
import { removeToolDirs } from '../test/tool-fixtures';
import { executionWorkflowId } from '../workflows/contracts/agent-execution';
import { taskRunWorkflowId } from '../workflows/contracts/task-run';
import { agents, runReconcile, tools, webhooks } from './histories/housekeeping-scenarios';
import { after, EventType, recorder, withStack } from './histories/recorder';
import { api, type Stage } from './histories/stage';

/** A run waits for its answer: a timer (the re-check) set after the activity that asked ended. */
const waitsForAnswer = (events: Parameters<typeof after>[0]) =>
  after(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, EventType.EVENT_TYPE_TIMER_STARTED);

async function agentExecutions(stage: Stage): Promise<void> {
  const { rec } = stage;
  const runs = api(stage);
  const tasked = await stage.agent({ maxConcurrency: 1 });
  const plain = await stage.agent({ tasks: false });
  const record = (id: string, name: string) => rec.closed(executionWorkflowId(id), `agent-execution-${name}`);

  const completed = await runs.execute(tasked.id, 'work [steps:2]');
  await record(completed, 'task-host-completed');
  const plainCompleted = await runs.execute(plain.id, 'work [steps:2]');
  await record(plainCompleted, 'plain-host-completed');
  const failed = await runs.execute(plain.id, 'work [fail]');
  await record(failed, 'failed');

  // One slot: the second run is QUEUED until the first, cancelled, frees it (slotFreed signal).
  const hanging = await runs.execute(tasked.id, 'hang [hang]');
  await runs.status(hanging, 'RUNNING');
  const queued = await runs.execute(tasked.id, 'after it [steps:1]');
  await runs.status(queued, 'QUEUED');
  await runs.cancel(hanging);
  await record(hanging, 'cancelled-while-running');
  await record(queued, 'queued-then-completed');

  // A task host: the run waits durably for a person's answer (no activity).
  const asking = await runs.execute(tasked.id, '[ask:Go on?] done');
  await rec.inFlight(executionWorkflowId(asking), 'agent-execution-input-waiting', waitsForAnswer);
  await runs.answer(asking);
  await record(asking, 'input-answered');
  const unanswered = await runs.execute(tasked.id, '[ask:Anyone there?] done', { inputTimeoutMs: 2000 });
  await record(unanswered, 'input-timed-out');
  const cancelledWaiting = await runs.execute(tasked.id, '[ask:Wait for me?] done');
  await runs.status(cancelledWaiting, 'WAITING_INPUT');
  await rec.inFlight(executionWorkflowId(cancelledWaiting), 'agent-execution-input-cancelled-in-flight', waitsForAnswer);
  await runs.cancel(cancelledWaiting);
  await record(cancelledWaiting, 'input-cancelled');
  // A plain host: the worker holds the question inside the activity.
  const plainAsking = await runs.execute(plain.id, '[ask:Which branch?] done');
  await runs.status(plainAsking, 'WAITING_INPUT');
  await runs.answer(plainAsking);
  await record(plainAsking, 'plain-host-input-answered');
}

/**
 * A MASTER's run delegates (its run token, the `delegate` Update on POST /mcp) to two WORKERs:
 * one child completes, the other is running when the parent is cancelled, and is cancelled with it.
 */
async function delegations(stage: Stage): Promise<void> {
  const { rec, http, admin, hosts } = stage;
  const runs = api(stage);
  const { host, serverId } = await registerHost(http, admin);
  hosts.push(host);
  const master = await activeAgent(http, admin, serverId, { role: 'MASTER', maxConcurrency: 3 });
  const done = await activeAgent(http, admin, serverId, { supervisorId: master.id });
  const hangs = await activeAgent(http, admin, serverId, { supervisorId: master.id });
  const parent = await runs.execute(master.id, 'hang [hang]');
  const call = await host.waitForCall('execute_prompt', (c) => c.args.executionId === parent);
  const token = (call.args.fleet as { token: string }).token;
  const delegate = async (agent: string, prompt: string, id: number) => {
    const res = await http
      .post('/mcp')
      .set({ Authorization: `Bearer ${token}`, Accept: 'application/json, text/event-stream' })
      .send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'delegate', arguments: { agent, prompt, wait: false } } })
      .expect(200);
    const data = res.text.trim().startsWith('{')
      ? res.text
      : res.text
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .at(-1)!
          .slice(6);
    return (JSON.parse(data) as { result: { structuredContent: { executionId: string } } }).result.structuredContent.executionId;
  };
  const completed = await delegate(done.id, 'work [steps:1]', 1);
  await runs.ended(completed);
  const running = await delegate(hangs.id, 'hang [hang]', 2);
  await runs.status(running, 'RUNNING');
  await runs.cancel(parent);
  await rec.closed(executionWorkflowId(parent), 'agent-execution-delegated-cancelled');
  await rec.closed(executionWorkflowId(completed), 'agent-execution-delegated-child-completed');
  await rec.closed(executionWorkflowId(running), 'agent-execution-delegated-child-cancelled');
}

/**
 * A worker process SIGKILLed mid-run on a task host: the next worker's attempt re-attaches to
 * the host's task (activities/mcp-task-follower.ts) instead of prompting again.
 */
async function reattach(stage: Stage): Promise<void> {
  // A context of its own: its task queue is polled by the worker processes only.
  const ctx = await createTestContext();
  const children: ChildProcess[] = [];
  try {
    const http = httpFor(ctx);
    const runs = api({ http, admin: stage.admin });
    const { host, serverId } = await registerHost(http, stage.admin, { stepDelayMs: 100 });
    stage.hosts.push(host);
    const validator = await startTestWorker(ctx);
    const agent = await activeAgent(http, stage.admin, serverId);
    await validator.stop();
    const first = spawnWorkerProcess(ctx);
    children.push(first);
    const id = await runs.execute(agent.id, 'long job [steps:12] [delay:150]');
    await host.waitForCall('execute_prompt', (c) => c.args.executionId === id, 60_000);
    await waitFor(async () => (await http.get(`/api/executions/${id}/events`).set(runs.auth)).body.items.length >= 4, 60_000, 100);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const second = spawnWorkerProcess(ctx);
    children.push(second);
    await stage.rec.closed(executionWorkflowId(id), 'agent-execution-worker-lost-reattached');
    const prompts = host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === id).length;
    if (prompts !== 1) throw new Error(`the run was prompted ${prompts} times: it did not re-attach`);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await ctx.close();
  }
}

async function taskRuns(stage: Stage): Promise<void> {
  const { rec } = stage;
  const tasks = taskApi(stage.http, stage.admin);
  const runs = api(stage);
  const agent = await stage.agent({ maxConcurrency: 5 });
  /** The occurrence's workflow and, when it ran, its child run's. */
  const record = async (taskId: string, executionId: string, name: string, child = true) => {
    await rec.closed(taskRunWorkflowId(taskId, executionId), `task-run-${name}`);
    if (child) await rec.closed(executionWorkflowId(executionId), `task-run-${name}-child`);
  };
  /** The run reached the host (RUNNING alone is set before its workflow starts). */
  const started = async (executionId: string) => {
    await tasks.waitStatus(executionId, 'RUNNING');
    await agent.host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 120_000);
  };
  const cancelTask = (taskId: string) => stage.http.post(`/api/tasks/${taskId}/cancel`).set(tasks.auth).send({}).expect(202);

  const skip = await tasks.create({ agentId: agent.id, prompt: 'long [hang]', overlapPolicy: 'SKIP' });
  const skipFirst = await tasks.run(skip.id);
  await started(skipFirst);
  const skipped = await tasks.run(skip.id);
  await tasks.ended(skipped);
  await cancelTask(skip.id);
  await record(skip.id, skipFirst, 'skip-running-cancelled');
  await record(skip.id, skipped, 'skip-skipped', false);

  const bufferOne = await tasks.create({ agentId: agent.id, prompt: 'work [steps:2] [delay:400]', overlapPolicy: 'BUFFER_ONE' });
  const one = await tasks.run(bufferOne.id);
  await started(one);
  const buffered = await tasks.run(bufferOne.id);
  await tasks.waitStatus(buffered, 'QUEUED');
  const notBuffered = await tasks.run(bufferOne.id);
  await record(bufferOne.id, one, 'buffer-one-first');
  await record(bufferOne.id, buffered, 'buffer-one-buffered');
  await record(bufferOne.id, notBuffered, 'buffer-one-skipped', false);

  const bufferAll = await tasks.create({ agentId: agent.id, prompt: 'work [steps:2] [delay:300]', overlapPolicy: 'BUFFER_ALL' });
  const all = [await tasks.run(bufferAll.id)];
  await started(all[0]!);
  all.push(await tasks.run(bufferAll.id), await tasks.run(bufferAll.id));
  for (const [i, id] of all.entries()) await record(bufferAll.id, id, `buffer-all-${i + 1}`);

  const cancelOther = await tasks.create({ agentId: agent.id, prompt: 'replace me [hang]', overlapPolicy: 'CANCEL_OTHER' });
  const cancelledRun = await tasks.run(cancelOther.id);
  await started(cancelledRun);
  const replacing = await tasks.run(cancelOther.id);
  await started(replacing);
  await cancelTask(cancelOther.id);
  await record(cancelOther.id, cancelledRun, 'cancel-other-cancelled');
  await record(cancelOther.id, replacing, 'cancel-other-replacing');

  const terminateOther = await tasks.create({ agentId: agent.id, prompt: 'replace me too [hang]', overlapPolicy: 'TERMINATE_OTHER' });
  const terminated = await tasks.run(terminateOther.id);
  await started(terminated);
  const terminating = await tasks.run(terminateOther.id);
  await started(terminating);
  await cancelTask(terminateOther.id);
  await record(terminateOther.id, terminated, 'terminate-other-terminated');
  await record(terminateOther.id, terminating, 'terminate-other-replacing');

  const allowAll = await tasks.create({ agentId: agent.id, prompt: 'work [steps:2] [delay:300]', overlapPolicy: 'ALLOW_ALL' });
  const beside = [await tasks.run(allowAll.id), await tasks.run(allowAll.id)];
  for (const [i, id] of beside.entries()) await record(allowAll.id, id, `allow-all-${i + 1}`);

  // timeoutMs and maxRetries: a run cut by the task's clock, retried as a new linked run.
  const retried = await tasks.create({ agentId: agent.id, prompt: 'stuck [hang]', timeoutMs: 1500, maxRetries: 1 });
  const attempt = await tasks.run(retried.id);
  await rec.closed(taskRunWorkflowId(retried.id, attempt), 'task-run-timed-out-retried');
  await rec.closed(executionWorkflowId(attempt), 'task-run-timed-out-retried-child-1');
  const second = (await tasks.runs(retried.id)).find((r) => r.retryOfId === attempt)!;
  await rec.closed(executionWorkflowId(second.id), 'task-run-timed-out-retried-child-2');

  // A task-backed run waits for a person's answer: it tells its occurrence (runWaiting), whose
  // clock stops meanwhile.
  const asking = await tasks.create({ agentId: agent.id, prompt: '[ask:Go on?] done', timeoutMs: 60_000 });
  const waiting = await tasks.run(asking.id);
  await tasks.waitStatus(waiting, 'WAITING_INPUT');
  await rec.inFlight(executionWorkflowId(waiting), 'task-run-input-waiting-child', waitsForAnswer);
  await rec.inFlight(taskRunWorkflowId(asking.id, waiting), 'task-run-input-waiting', (events) =>
    after(events, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
  );
  await runs.answer(waiting);
  await record(asking.id, waiting, 'input-answered');
}

/** `kind: tool` tasks on an MCP server with an `echo` tool: called at once, and gated (it waits for an approval first). */
async function toolTasks(stage: Stage): Promise<void> {
  const { http, admin, rec } = stage;
  const tasks = taskApi(http, admin);
  const echo = await startMcpServer({ tools: [...HOST_TOOLS, 'echo'] });
  try {
    const server = await http
      .post('/api/servers')
      .set(tasks.auth)
      .send({ name: `echo-${randomUUID().slice(0, 8)}`, url: echo.url, masterToken: echo.token })
      .expect(201);
    await http.post(`/api/servers/${server.body.id}/test`).set(tasks.auth).expect(200);
    const tool = (
      await http
        .post('/api/tools')
        .set(tasks.auth)
        .send({ name: 'echo', category: 'mcp', installCommand: 'true', uninstallCommand: 'true', versionCommand: 'true' })
        .expect(201)
    ).body as { id: string };
    for (const gated of [false, true]) {
      const agent = await activeAgent(http, admin, server.body.id);
      await http
        .put(`/api/tools/agent/${agent.id}/permissions`)
        .set(tasks.auth)
        .send({ permissions: [{ toolId: tool.id, canUse: true, requiresApproval: gated }] })
        .expect(200);
      const task = await tasks.create({ agentId: agent.id, kind: 'tool', toolName: 'echo', toolArguments: { name: 'hello' } });
      const id = await tasks.run(task.id);
      if (gated) {
        await tasks.waitStatus(id, 'WAITING_INPUT');
        await http
          .post(`/api/executions/${id}/input`)
          .set(tasks.auth)
          .send({ action: 'accept', content: { approve: true } })
          .expect(200);
      }
      const name = gated ? 'task-run-tool-approved' : 'task-run-tool';
      await rec.closed(taskRunWorkflowId(task.id, id), name);
      await rec.closed(executionWorkflowId(id), `${name}-child`);
    }
  } finally {
    await echo.close();
  }
}

/** Each scenario with the name prefixes of the histories it writes, so a partial recording runs only those it needs. */
const SCENARIOS: Array<[(stage: Stage) => Promise<void>, string[]]> = [
  [agentExecutions, ['agent-execution-']],
  [reattach, ['agent-execution-worker-lost']],
  [delegations, ['agent-execution-delegated']],
  [taskRuns, ['task-run-']],
  [toolTasks, ['task-run-tool']],
  [tools, ['tool-install-', 'server-', 'system-check']],
  [agents, ['agent-provision-', 'agent-retire-']],
  [webhooks, ['webhook-delivery-']],
  [runReconcile, ['run-reconcile']],
];

async function main(): Promise<void> {
  const prefixes = process.argv.slice(2);
  const only = (name: string) => !prefixes.length || prefixes.some((p) => name.startsWith(p));
  await withStack(async () => {
    const ctx = await createTestContext();
    const worker = await startTestWorker(ctx);
    const hosts: AgentHost[] = [];
    try {
      const http = httpFor(ctx);
      const admin = await registerAccount(http, 'History Recording Org');
      const stage: Stage = {
        ctx,
        http,
        admin,
        rec: recorder(ctx.temporal.client, only, { fresh: !prefixes.length }),
        hosts,
        async agent({ tasks = true, maxConcurrency, allowCommands } = {}) {
          const { host, serverId } = await registerHost(http, admin, { tasks, ...(allowCommands ? { allowCommands } : {}) });
          hosts.push(host);
          const agent = await activeAgent(http, admin, serverId, maxConcurrency ? { maxConcurrency } : {});
          return { id: agent.id, serverId, host };
        },
      };
      for (const [scenario, writes] of SCENARIOS) {
        if (prefixes.length && !writes.some((w) => prefixes.some((p) => p.startsWith(w) || w.startsWith(p)))) continue;
        process.stdout.write(`${scenario.name}\n`);
        await scenario(stage);
      }
      process.stdout.write(`${stage.rec.written.length} histories written\n`);
    } finally {
      await worker.stop();
      for (const host of hosts) await host.close();
      await ctx.close();
      removeToolDirs();
    }
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
