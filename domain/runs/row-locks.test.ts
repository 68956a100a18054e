import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, Execution, ExecutionStatus, ExecutionTrigger } from '../../entities';
import { makeAgent, makeExecution, makeOrganization, makeServer } from '../../test/factories';
import { waitFor } from '../../test/fleet';
import { createTestContext, type TestContext } from '../../test/harness';
import { appendEvent, eventsAfter, ExecutionLog } from './execution-log';
import { executionRef } from './execution-status';
import { randomUUID } from 'node:crypto';
import { awaitRecording, lockExecution } from './row-locks';
import { acquireSlot, slotForNewRun } from './slots';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createMetricsRegistry } from '../../lib/metrics';
import { WorkerMetrics } from '../../worker/metrics';
import { AGENT_EXECUTION_WORKFLOW, executionWorkflowId } from '../../workflows/contracts/agent-execution';

/**
 * The lock order of the run lifecycle (row-locks.ts) on a real PostgreSQL. Each test holds a
 * transaction open at a chosen point and checks what the others do meanwhile and after; where
 * one must wait, the test waits until PostgreSQL shows it blocked.
 */
describe('run row locks', () => {
  let ctx: TestContext;
  let agent: Agent;
  const em = () => ctx.orm.em.fork();

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = em();
    agent = makeAgent(setup, makeServer(setup, makeOrganization(setup, 'Row Locks Org')));
    agent.status = AgentStatus.ACTIVE;
    agent.maxConcurrency = 5;
    await setup.flush();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  async function execution(status: ExecutionStatus): Promise<Execution> {
    const tx = em();
    const row = makeExecution(tx, agent, status);
    await tx.flush();
    return row;
  }

  /** A transaction of its own, open until the test ends it; `pid` is its backend. */
  async function holder(): Promise<{ tx: EntityManager; pid: number }> {
    const tx = em();
    await tx.begin();
    const [row] = await tx.execute<{ pid: number }[]>('select pg_backend_pid() as pid');
    return { tx, pid: row!.pid };
  }

  /** Resolves once some statement waits for a lock the backend `pid` holds. */
  const blockedBy = (pid: number) =>
    waitFor(async () => {
      const [row] = await em().execute<{ n: number }[]>(
        'select count(*)::int as n from pg_stat_activity where ? = any(pg_blocking_pids(pid))',
        [pid],
      );
      return row!.n > 0;
    }, 30_000);

  /** Whether `promise` has settled by now. */
  async function settled(promise: Promise<unknown>): Promise<boolean> {
    const marker = Symbol('pending');
    const first = await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      new Promise((resolve) => setImmediate(() => resolve(marker))),
    ]);
    return first !== marker;
  }

  it("the worker's append goes through while a transaction holds the run, which then takes the next seq: no deadlock", async () => {
    const run = await execution(ExecutionStatus.RUNNING);
    const ref = executionRef(run);
    // What requestInput and answerInput do: lock the run, write, append; here held open between the lock and the append.
    let locked!: () => void;
    let proceed!: () => void;
    const isLocked = new Promise<void>((resolve) => (locked = resolve));
    const mayProceed = new Promise<void>((resolve) => (proceed = resolve));
    const question = em().transactional(async (tx) => {
      await lockExecution(tx, { id: run.id });
      locked();
      await mayProceed;
      return (await appendEvent(tx, ref, 1, 'input_required', {})).seq;
    });
    await isLocked;

    // The host's event meanwhile: the worker appends it outside any transaction. Under FOR UPDATE
    // its key check waited for the transaction holding the run, which then waited for its seq: 40P01.
    const appended = new ExecutionLog(ctx.orm, ref, 1).append('tool_call', { toolCall: { toolCallId: 'c1', name: 'git' } });
    await waitFor(() => settled(appended), 30_000, 20);
    await expect(appended).resolves.toMatchObject({ seq: 1 });
    proceed();
    await expect(question).resolves.toBe(2);
    expect((await eventsAfter(em(), run.id, 0)).map((e) => [e.seq, e.phase])).toEqual([
      [1, 'tool_call'],
      [2, 'input_required'],
    ]);
  });

  it('an append in a transaction whose seq another writer took first takes the next one, and its transaction goes on', async () => {
    const run = await execution(ExecutionStatus.RUNNING);
    const ref = executionRef(run);
    const first = await holder();
    await appendEvent(first.tx, ref, 1, 'output', { output: 'a' });
    const second = em().transactional(async (tx) => {
      const mine = await appendEvent(tx, ref, 1, 'output', { output: 'b' });
      const next = await appendEvent(tx, ref, 1, 'output', { output: 'c' });
      return [mine.seq, next.seq];
    });
    // The second one computed seq 1 as well and waits on the first one's.
    await blockedBy(first.pid);
    await first.tx.commit();
    await expect(second).resolves.toEqual([2, 3]);
    expect((await eventsAfter(em(), run.id, 0)).map((e) => [e.seq, e.output])).toEqual([
      [1, 'a'],
      [2, 'b'],
      [3, 'c'],
    ]);
  });

  it('a queued run ended while it asks for its slot stays ended (its row is locked before its agent)', async () => {
    const run = await execution(ExecutionStatus.QUEUED);
    const ending = await holder();
    await ending.tx.execute("update executions set status = 'CANCELLED' where id = ?", [run.id]);
    const asking = acquireSlot(em(), run.id);
    await blockedBy(ending.pid);
    await ending.tx.commit();
    await expect(asking).resolves.toEqual({ started: false, rejected: 'the execution is already CANCELLED' });
    expect((await em().findOneOrFail(Execution, run.id)).status).toBe(ExecutionStatus.CANCELLED);
  });

  /** A run's row as startExecution writes it, with the id its workflow was started with. */
  const recordRow = (tx: EntityManager, id: string) =>
    tx.create(Execution, {
      id,
      organization: agent.organization,
      agent: tx.getReference(Agent, agent.id),
      trigger: ExecutionTrigger.API,
      status: ExecutionStatus.QUEUED,
      prompt: 'p',
    });

  it("a run's workflow that asks before the row recording it commits waits for the commit, then finds it (start-execution.ts)", async () => {
    const recording = await holder();
    const id = randomUUID();
    // As startExecution: the recording lock first, then the workflow starts, then the row.
    expect(await slotForNewRun(recording.tx, agent, id)).toBe(true);
    const asking = acquireSlot(em(), id);
    recordRow(recording.tx, id);
    await recording.tx.flush();
    await blockedBy(recording.pid);
    expect(await settled(asking)).toBe(false);
    await recording.tx.commit();
    // Before: 'the execution no longer exists', and the run failed before it began.
    await expect(asking).resolves.toEqual({ started: true });
    expect((await em().findOneOrFail(Execution, id)).status).toBe(ExecutionStatus.RUNNING);
  });

  it("the worker's metrics do not count a run the API recorded RUNNING as started again, though its first activity ran before the commit", async () => {
    const metrics = new WorkerMetrics(createMetricsRegistry(), ctx.orm);
    const started = async () => (await metrics.registry.getSingleMetric('mcp_fleet_runs_started_total')!.get()).values[0]?.value ?? 0;
    const recording = await holder();
    const id = randomUUID();
    expect(await slotForNewRun(recording.tx, agent, id)).toBe(true);
    // The workflow's first activity, as the worker runs it: through the metrics interceptor.
    const env = new MockActivityEnvironment(
      { workflowType: AGENT_EXECUTION_WORKFLOW, workflowExecution: { workflowId: executionWorkflowId(id), runId: randomUUID() } },
      { interceptors: [metrics.runTransitions] },
    );
    const activity = env.run(() => awaitRecording(ctx.orm.em, id));
    Object.assign(recordRow(recording.tx, id), {
      status: ExecutionStatus.RUNNING,
      startedAt: new Date(),
      workflowId: executionWorkflowId(id),
    });
    await recording.tx.flush();
    await blockedBy(recording.pid);
    await recording.tx.commit();
    await activity;
    // The API counted it (api/metrics.ts runStarted); before, the worker's interceptor read no
    // row before the activity, a RUNNING one after, and counted it too.
    expect(await started()).toBe(0);
  });

  it('a run whose recording rolls back is not there for its workflow, which hears so once the rollback is done', async () => {
    const recording = await holder();
    const id = randomUUID();
    await slotForNewRun(recording.tx, agent, id);
    recordRow(recording.tx, id);
    await recording.tx.flush();
    const asking = acquireSlot(em(), id);
    await blockedBy(recording.pid);
    await recording.tx.rollback();
    await expect(asking).resolves.toEqual({ started: false, rejected: 'the execution no longer exists' });
  });

  it('awaitRecording does not wait for a run nobody is recording', async () => {
    await expect(awaitRecording(ctx.orm.em, randomUUID())).resolves.toBeUndefined();
  });

  it('a new run counts every live run of its agent before its own row exists', async () => {
    const counted = em();
    const live = await counted.count(Execution, {
      agent: agent.id,
      status: { $in: [ExecutionStatus.RUNNING, ExecutionStatus.WAITING_INPUT, ExecutionStatus.QUEUED] },
    });
    const free = await em().transactional(async (t) => [
      await slotForNewRun(t, { ...agent, maxConcurrency: live + 1 } as Agent, randomUUID()),
      await slotForNewRun(t, { ...agent, maxConcurrency: live } as Agent, randomUUID()),
    ]);
    expect(free).toEqual([true, false]);
  });
});
