import { randomUUID } from 'node:crypto';
import { ActivityFailure, ApplicationFailure, CancelledFailure, WorkflowFailedError } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { startAgentProvision } from '../domain/temporal';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from '../test/api';
import { registerHost } from '../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../test/harness';
import { historySafe } from './history-safe-failures';

/** Every failure the history holds (activity failures, the workflow's own), as the Web UI shows them. */
function failuresIn(history: temporal.api.history.v1.IHistory): unknown[] {
  return (history.events ?? []).flatMap((event) =>
    Object.values(event)
      .filter(
        (attributes): attributes is { failure: unknown } =>
          typeof attributes === 'object' && attributes !== null && 'failure' in attributes && !!attributes.failure,
      )
      .map((attributes) => attributes.failure),
  );
}

describe('activity failures in the workflow history', () => {
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let http: Http;
  let admin: Account;
  let host: AgentHost | undefined;
  // What a leaked credential looks like; unique to this run, so the index below covers no other test's rows.
  const secret = `sk_live_${randomUUID().replace(/-/g, '')}`;
  const index = `test_refusals_${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'History Org');
    // A real unique constraint that the second of two agents refused with the same text runs into.
    await ctx.orm.em.getConnection().execute(`create unique index ${index} on agents (last_error) where last_error like '%${secret}%'`);
  });
  afterAll(async () => {
    await ctx?.orm.em.getConnection().execute(`drop index if exists ${index}`);
    await host?.close();
    await worker?.stop();
    await ctx?.close();
  });

  it('hold the code and constraint of a database error, never its SQL or the values in it', async () => {
    const registered = await registerHost(http, admin, { failProvision: `no licence for ${secret}` });
    host = registered.host;
    const create = async (name: string) =>
      (await http.post('/api/agents').auth(admin.accessToken, { type: 'bearer' }).send({ serverId: registered.serverId, name }).expect(201))
        .body.id as string;
    const first = await create('first');
    const second = await create('second');
    // The first refusal is recorded on its agent: last_error now holds the secret-looking text.
    await http.post(`/api/agents/${first}/validate`).auth(admin.accessToken, { type: 'bearer' }).expect(502);

    const handle = await startAgentProvision(ctx.temporal, {
      agentId: second,
      organizationId: admin.organizationId,
      serverId: registered.serverId,
      validatedBy: admin.userId,
    });
    const failed = await handle.result().then(
      () => undefined,
      (error: unknown) => error,
    );

    expect(failed).toBeInstanceOf(WorkflowFailedError);
    const activity = (failed as WorkflowFailedError).cause;
    expect(activity).toBeInstanceOf(ActivityFailure);
    expect(activity?.cause).toBeInstanceOf(ApplicationFailure);
    expect(activity?.cause).toMatchObject({
      type: 'UniqueConstraintViolationException',
      message: `database error 23505 (constraint ${index})`,
    });
    const failures = JSON.stringify(failuresIn(await handle.fetchHistory()));
    expect(failures).toContain(`database error 23505 (constraint ${index})`);
    expect(failures).not.toContain(secret);
    expect(failures).not.toMatch(/update\s+"agents"|last_error|duplicate key/i);
  });

  it('withhold SQL quoted by any error or its cause, and leave Temporal failures and plain errors as they are', async () => {
    const failure = ApplicationFailure.nonRetryable('update "agents" set x = 1', 'ExecutionFailed');
    const cancelled = new CancelledFailure('cancelled by request');
    const plain = new Error('the server refused');
    expect(historySafe(failure)).toBe(failure);
    expect(historySafe(cancelled)).toBe(cancelled);
    expect(historySafe(plain)).toBe(plain);

    const quoting = historySafe(new TypeError(`insert into sessions (token) values ('${secret}')`));
    expect(quoting).toBeInstanceOf(ApplicationFailure);
    expect(quoting).toMatchObject({ type: 'TypeError', message: '[withheld: the text quoted SQL]', nonRetryable: false });
    expect((quoting as Error).stack).not.toContain(secret);

    const database = await ctx.orm.em
      .getConnection()
      .execute(`select 1 / 0 as "${secret}"`)
      .catch((error: unknown) => error as Error);
    expect((database as Error).message).toContain(secret);
    const wrapped = historySafe(new Error('could not record the check', { cause: database }));
    expect(wrapped).toMatchObject({ type: 'Error', message: 'could not record the check', cause: { message: 'database error 22012' } });
    expect(JSON.stringify([(wrapped as Error).stack, ((wrapped as Error).cause as Error).stack])).not.toContain(secret);
  });
});
