/**
 * An event the worker cannot record fails the attempt, and Temporal tries it again, instead of
 * the run going on with a log that lacks it. PostgreSQL itself refuses the writes here: a
 * trigger on `execution_events` fails every event of one type written by attempt 1 of one
 * agent with SQLSTATE 53100 (disk full), which no retry of the append cures.
 */
import { randomUUID } from 'node:crypto';
import type { AgentExecutionPayload } from '../domain/events';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { hostWithAgent, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
const PROMPT = 'counting [steps:4] [delay:150]';
const CHUNKS = ['chunk 1\n', 'chunk 2\n', 'chunk 3\n', 'chunk 4\n'];

describe('an event that cannot be recorded', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  const hosts: AgentHost[] = [];
  const refusal = `test_refuse_output_${randomUUID().replace(/-/g, '')}`;
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Unrecorded Events Org');
    worker = await startTestWorker(ctx);
    await ctx.orm.em.execute(`create function ${refusal}() returns trigger language plpgsql as $$
      begin raise exception 'could not extend file: No space left on device' using errcode = '53100'; end $$`);
  });
  afterAll(async () => {
    await ctx?.orm.em.execute(`drop function if exists ${refusal}() cascade`);
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  /** From now on PostgreSQL refuses the agent's events of this type written by attempt 1. */
  async function refuseFirstAttempt(agentId: string, type: string): Promise<void> {
    await ctx.orm.em.execute(
      `create trigger ${refusal}_${agentId.replace(/-/g, '')} before insert on execution_events for each row
       when (new.payload->>'agentId' = '${agentId}' and new.type = '${type}' and new.attempt = 1) execute function ${refusal}()`,
    );
  }

  async function runToTheEnd(tasks: boolean, refused = 'output', prompt = PROMPT) {
    const { host, agent } = await hostWithAgent(http, admin, hosts, { tasks });
    await refuseFirstAttempt(agent.id, refused);
    const id = (await http.post(`/api/agents/${agent.id}/execute`).set(as()).send({ prompt }).expect(202)).body.executionId as string;
    const answered = new Set<string>();
    const done = await waitFor(
      async () => {
        const body = (await http.get(`/api/executions/${id}`).set(as()).expect(200)).body as {
          status: string;
          pendingInput: { inputId: string } | null;
        };
        if (body.pendingInput && !answered.has(body.pendingInput.inputId)) {
          answered.add(body.pendingInput.inputId);
          await http
            .post(`/api/executions/${id}/input`)
            .set(as())
            .send({ action: 'accept', content: { answer: 'yes' } })
            .expect(200);
        }
        return FINAL.includes(body.status) ? body : undefined;
      },
      60_000,
      100,
    );
    const events = (await http.get(`/api/executions/${id}/events`).query({ limit: 1000 }).set(as()).expect(200)).body
      .items as AgentExecutionPayload[];
    const prompts = host.calls.filter((c) => c.tool === 'execute_prompt' && c.args.executionId === id).length;
    return { host, id, done, events, prompts, answered: answered.size };
  }

  it('plain host: the attempt fails, the call is cancelled on the host, and attempt 2 runs the prompt again with every event logged', async () => {
    const { host, id, done, events, prompts } = await runToTheEnd(false);
    expect(done).toMatchObject({ status: 'COMPLETED', attempt: 2, output: CHUNKS.join('') });
    await host.waitForCancellation(id);
    expect(prompts).toBe(2);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.find((e) => e.phase === 'status' && e.attempt === 2)).toMatchObject({
      status: 'RUNNING',
      data: { retry: true, attempt: 2 },
    });
    // Attempt 1 could store none of its output; attempt 2 stored all of it, once.
    expect(events.filter((e) => e.phase === 'output').map((e) => [e.attempt, e.output])).toEqual(CHUNKS.map((chunk) => [2, chunk]));
    expect(events.filter((e) => e.phase === 'progress' && e.attempt === 2)).toHaveLength(CHUNKS.length);
    expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED', attempt: 2 });
  });

  it('task host: the attempt stops following without cancelling the task; attempt 2 re-attaches, and nothing the log holds comes twice', async () => {
    const { host, done, events, prompts } = await runToTheEnd(true);
    expect(done).toMatchObject({ status: 'COMPLETED', attempt: 2, output: CHUNKS.join('') });
    expect(prompts).toBe(1);
    expect(host.taskRequests.filter((r) => r.method === 'tasks/cancel')).toEqual([]);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.find((e) => e.phase === 'status' && e.attempt === 2)).toMatchObject({
      status: 'RUNNING',
      data: { reattach: true, attempt: 2 },
    });
    // What attempt 1 received and could not store is lost (docs/executions.md); what the host still had comes once, to attempt 2.
    const outputs = events.filter((e) => e.phase === 'output');
    expect(outputs.every((e) => e.attempt === 2)).toBe(true);
    const texts = outputs.map((e) => e.output);
    expect(texts).toEqual(CHUNKS.slice(CHUNKS.length - texts.length));
    const progress = events.filter((e) => e.phase === 'progress').map((e) => e.progress!.progress);
    expect(new Set(progress).size).toBe(progress.length);
    expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED', attempt: 2 });
  });

  it.each([true, false])(
    'a question whose events PostgreSQL refuses fails the attempt; the retry meets the question again, and the answer completes the run (task host: %s)',
    async (tasks) => {
      const { done, events, prompts, answered } = await runToTheEnd(tasks, 'input_required', '[ask:Go on?] done');
      expect(done).toMatchObject({
        status: 'COMPLETED',
        attempt: 2,
        output: expect.stringContaining('asked "Go on?": accept {"answer":"yes"}'),
      });
      expect(answered).toBe(1);
      // A task host asked again on the re-attached task; a plain call was sent again.
      expect(prompts).toBe(tasks ? 1 : 2);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(events.filter((e) => e.phase === 'input_required').map((e) => e.attempt)).toEqual([2]);
      expect(events.filter((e) => e.phase === 'input_answered')).toHaveLength(1);
      expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED', attempt: 2 });
    },
  );
});
