import { randomUUID } from 'node:crypto';
import type { Knex } from '@mikro-orm/postgresql';
import type { AgentHost } from '../../host/server';
import { loadConfig } from '../../lib/config';
import { httpFor, registerAccount, type Account } from '../../test/api';
import { activeAgent, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';
import { taskApi } from '../../test/tasks';
import type { OccurrenceRequest, OccurrenceStep } from '../../workflows/contracts/task-run';
import type { RunDeps } from '../runs/run-deps';
import { beginOccurrence } from './occurrences';

/**
 * The first decision of an occurrence (beginOccurrence) against the task's row lock: an
 * ALLOW_ALL occurrence chooses its agent beside the task's other decisions, any other policy
 * decides under the lock, one occurrence at a time.
 */
describe('beginOccurrence and the task row lock', () => {
  let ctx: TestContext;
  let deps: RunDeps;
  let admin: Account;
  let tasks: ReturnType<typeof taskApi>;
  let agentId: string;
  const hosts: AgentHost[] = [];

  beforeAll(async () => {
    // A holder, three decisions and the polls at once: more than the harness's 5 connections.
    ctx = await createTestContext({ database: { ...loadConfig().database, poolMax: 10 } });
    deps = { orm: ctx.orm, logger: ctx.logger, temporal: ctx.temporal };
    const http = httpFor(ctx);
    admin = await registerAccount(http, 'Occurrence Lock Org');
    tasks = taskApi(http, admin);
    // A worker only to validate the agent: the decisions below start no workflow.
    const worker = await startTestWorker(ctx);
    try {
      const { host, serverId } = await registerHost(http, admin);
      hosts.push(host);
      ({ id: agentId } = await activeAgent(http, admin, serverId, { maxConcurrency: 10 }));
    } finally {
      await worker.stop();
    }
  });
  afterAll(async () => {
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  const request = (taskId: string): OccurrenceRequest => {
    const executionId = randomUUID();
    return { taskId, executionId, trigger: 'manual', taskRunWorkflowId: `task-run-${taskId}-${executionId}` };
  };
  const task = async (overlapPolicy: string) => (await tasks.create({ agentId, prompt: 'lock [steps:1]', overlapPolicy })).id;
  const row = async (taskId: string) =>
    (
      await ctx.orm.em
        .getConnection()
        .execute<{ run_count: number; last_run_at: string | null }[]>('select run_count, last_run_at from tasks where id = ?', [taskId])
    )[0]!;

  /** Holds the rows of `taskIds` as the task's lock does (lockTask), in a plain knex transaction (a MikroORM one would be joined). */
  async function holdTasks(taskIds: string[]): Promise<{ holder: Knex.Transaction; pid: number }> {
    const holder = await ctx.orm.em.getConnection().getKnex().transaction();
    const pid = ((await holder.raw('select pg_backend_pid() as pid')) as { rows: { pid: number }[] }).rows[0]!.pid;
    await holder.raw(`select id from tasks where id in (${taskIds.map(() => '?').join(', ')}) for no key update`, taskIds);
    return { holder, pid };
  }

  /** The statements waiting on the holder, or on a waiter queued behind it. */
  async function waitingOn(pid: number): Promise<string[]> {
    const rows = await ctx.orm.em.getConnection().execute<{ query: string }[]>(
      `select a.query from pg_stat_activity a where ?::int = any(pg_blocking_pids(a.pid)) or exists
         (select 1 from pg_stat_activity b where ?::int = any(pg_blocking_pids(b.pid)) and b.pid = any(pg_blocking_pids(a.pid)))`,
      [pid, pid],
    );
    return rows.map((r) => r.query);
  }

  it('two ALLOW_ALL occurrences of one task choose their agent while the task is held; a SKIP occurrence waits for it before it reads the task’s runs', async () => {
    const allowAll = await task('ALLOW_ALL');
    const skip = await task('SKIP');
    const { holder, pid } = await holdTasks([allowAll, skip]);
    let decisions: Promise<OccurrenceStep[]> | undefined;
    try {
      decisions = Promise.all([request(allowAll), request(allowAll), request(skip)].map((r) => beginOccurrence(deps, r)));
      // Each ALLOW_ALL one waits only to write the task's counters, after it read its own row
      // and chose the agent (the statement that names the task's policy); the SKIP one waits
      // to take the task's lock, before it reads the task's runs or its agents.
      const waiting = await waitFor(async () => {
        const queries = await waitingOn(pid);
        return queries.length >= 3 ? queries : undefined;
      });
      expect(waiting.filter((q) => q.includes(`where id = '${allowAll}' and overlap_policy = `))).toHaveLength(2);
      expect(waiting.filter((q) => q.trim().endsWith(`from tasks where id = '${skip}' for no key update`))).toHaveLength(1);
      await holder.commit();
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
    const [first, second, skipped] = await decisions!;
    expect(first).toMatchObject({ next: 'run', slotTaken: true });
    expect(second).toMatchObject({ next: 'run', slotTaken: true });
    expect(first!.executionId).not.toBe(second!.executionId);
    expect(skipped).toMatchObject({ next: 'run', slotTaken: true });
    expect(await row(allowAll)).toMatchObject({ run_count: 2, last_run_at: expect.anything() });

    // The policy still serialises: the SKIP task's next occurrence meets its live run.
    const again = await beginOccurrence(deps, request(skip));
    expect(again).toMatchObject({
      next: 'end',
      status: 'SKIPPED',
      reason: expect.stringContaining(`run ${skipped!.executionId} (RUNNING)`),
    });
    expect(await row(skip)).toMatchObject({ run_count: 1 });
    // And an ALLOW_ALL one runs beside the live ones; a retried activity finds its row.
    const third = request(allowAll);
    const ran = await beginOccurrence(deps, third);
    expect(ran).toMatchObject({ next: 'run', executionId: third.executionId });
    expect(await beginOccurrence(deps, third)).toEqual(ran);
    expect(await row(allowAll)).toMatchObject({ run_count: 3 });
  });

  it('an ALLOW_ALL occurrence whose task turns SKIP while it is decided is decided again under the lock: SKIPPED behind the live run', async () => {
    const allowAll = await task('ALLOW_ALL');
    const live = await beginOccurrence(deps, request(allowAll));
    expect(live).toMatchObject({ next: 'run' });
    // An edit in flight: the policy changed, not yet committed, while the occurrence decides.
    const { holder, pid } = await holdTasks([allowAll]);
    let decision: Promise<OccurrenceStep> | undefined;
    try {
      await holder.raw(`update tasks set overlap_policy = 'SKIP', updated_at = now() where id = ?`, [allowAll]);
      decision = beginOccurrence(deps, request(allowAll));
      await waitFor(async () => (await waitingOn(pid)).some((q) => q.includes(`where id = '${allowAll}' and overlap_policy = `)));
      await holder.commit();
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
    expect(await decision!).toMatchObject({
      next: 'end',
      status: 'SKIPPED',
      reason: expect.stringContaining(`run ${live.executionId} (RUNNING) still going (overlap policy SKIP)`),
    });
    expect(await row(allowAll)).toMatchObject({ run_count: 1 });
  });

  it('an ALLOW_ALL occurrence reads its task, agent and server in one statement, never its live runs, and takes the task only once the agent is chosen', async () => {
    const statementsOf = async (taskId: string): Promise<string[]> => {
      const knex = ctx.orm.em.getConnection().getKnex();
      const seen: string[] = [];
      const listen = (query: { sql?: unknown }) => {
        if (typeof query.sql === 'string') seen.push(query.sql);
      };
      knex.on('query', listen);
      try {
        await beginOccurrence(deps, request(taskId));
      } finally {
        knex.removeListener('query', listen);
      }
      return seen;
    };
    const alongside = await statementsOf(await task('ALLOW_ALL'));
    const underLock = await statementsOf(await task('SKIP'));
    // One statement for the task, its agent and the agent's server.
    expect(alongside[1]).toMatch(/from "tasks" as "t0" left join \("agents" as "a1" inner join "mcp_servers" as "s2"/);
    // No count of the task's live runs; the task's row taken after the agent was chosen, before its lock.
    expect(alongside.some((q) => /"task_id" = '[^']+' and "e0"."status" in/.test(q))).toBe(false);
    const chosen = alongside.findIndex((q) => q.includes('from agents a join mcp_servers s'));
    const taken = alongside.findIndex((q) => q.includes('overlap_policy = '));
    const agentLocked = alongside.findIndex((q) => q.startsWith('select * from agents where id = '));
    expect(chosen).toBeGreaterThan(0);
    expect(taken).toBeGreaterThan(chosen);
    expect(agentLocked).toBeGreaterThan(taken);
    expect(alongside.slice(0, taken).filter((q) => /from "(tasks|agents|mcp_servers)"/.test(q))).toHaveLength(1);
    expect(alongside.some((q) => /from "?tasks"?.*for (no key )?update/.test(q) && !q.includes('overlap_policy = '))).toBe(false);
    // A policy's decision counts the live runs under the lock, on the task as it read it before
    // (to learn its policy), not read again when nobody wrote it meanwhile.
    const locked = underLock.findIndex((q) => q.includes('from tasks where id = ') && q.endsWith('for no key update'));
    expect(locked).toBeGreaterThan(0);
    expect(underLock.filter((q) => q.includes('from "tasks"'))).toHaveLength(1);
    expect(underLock.findIndex((q) => /"task_id" = '[^']+' and "e0"."status" in/.test(q))).toBeGreaterThan(locked);
  });
});
