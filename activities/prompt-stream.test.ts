import { randomUUID } from 'node:crypto';
import { Execution, ExecutionStatus, ExecutionTrigger, Organization } from '../entities';
import { ExecutionLog, eventsAfter } from '../domain/runs/execution-log';
import { makeOrganization } from '../test/factories';
import { waitFor } from '../test/fleet';
import { createTestContext, type TestContext } from '../test/harness';
import { PromptStream } from './prompt-stream';

/** What a run streams, against a real PostgreSQL: an event that cannot be written is reported, never dropped. */
describe('the prompt stream', () => {
  let ctx: TestContext;
  let organizationId: string;

  beforeAll(async () => {
    ctx = await createTestContext();
    const em = ctx.orm.em.fork();
    organizationId = makeOrganization(em, 'Prompt Stream Org').id;
    await em.flush();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  function streamOf(executionId: string) {
    const unrecorded: unknown[] = [];
    const beats: number[] = [];
    const log = new ExecutionLog(ctx.orm, { id: executionId, organizationId, agentId: randomUUID() }, 1);
    const stream = new PromptStream(
      log,
      {
        orm: ctx.orm,
        logger: ctx.logger,
        temporalClient: ctx.temporal.client,
        heartbeat: (seq) => beats.push(seq),
        onUnrecorded: (error) => unrecorded.push(error),
      },
      [],
    );
    return { log, stream, unrecorded, beats };
  }

  it('an event PostgreSQL refuses is reported once, and flushing the log rejects with it', async () => {
    // No such execution: each insert breaks the foreign key (23503), which no retry cures.
    const executionId = randomUUID();
    const { log, stream, unrecorded, beats } = streamOf(executionId);
    stream.message({ executionId, type: 'tool_call', toolCallId: 'c1', name: 'git', arguments: {} });
    stream.progress({ progress: 1, total: 2 });
    await waitFor(async () => unrecorded.length > 0);
    await expect(log.flush()).rejects.toMatchObject({ code: '23503' });
    expect(unrecorded).toHaveLength(1);
    expect(unrecorded[0]).toMatchObject({ code: '23503' });
    expect(beats).toEqual([]);
    await stream.finish();
  });

  it('events that are written resolve the log and beat with their seq; the todo list reaches the row', async () => {
    const em = ctx.orm.em.fork();
    const run = em.create(Execution, {
      organization: em.getReference(Organization, organizationId),
      trigger: ExecutionTrigger.API,
      status: ExecutionStatus.RUNNING,
      prompt: 'p',
    });
    await em.flush();
    const { log, stream, unrecorded, beats } = streamOf(run.id);
    stream.message({ executionId: run.id, type: 'output', text: 'hello' });
    stream.message({ executionId: run.id, type: 'todo', todos: [{ id: '1', content: 'Say hello', status: 'in_progress' }] });
    await log.flush();
    await stream.finish();
    expect(unrecorded).toEqual([]);
    await waitFor(async () => beats.length === 2);
    expect((await eventsAfter(em, run.id, 0)).map((e) => [e.seq, e.phase])).toEqual([
      [1, 'output'],
      [2, 'todo'],
    ]);
    expect((await ctx.orm.em.fork().findOneOrFail(Execution, run.id)).todos).toEqual([
      { id: '1', content: 'Say hello', status: 'in_progress' },
    ]);
  });
});
