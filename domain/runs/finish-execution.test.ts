import { randomUUID } from 'node:crypto';
import { Agent, AgentStatus, Execution, ExecutionEvent, ExecutionStatus, Webhook, WebhookDelivery } from '../../entities';
import { makeAgent, makeExecution, makeOrganization, makeServer } from '../../test/factories';
import { createTestContext, type TestContext } from '../../test/harness';
import { finishExecution } from './finish-execution';

/**
 * A run's end is one fact: its final row, its final `status` event and the webhook alert that
 * event raises commit together. Here the event's insert fails once (a trigger on a real
 * PostgreSQL), as a lost connection or a full disk would, and the call is retried as Temporal
 * retries the activity.
 */
describe('finishing a run', () => {
  let ctx: TestContext;
  let agent: Agent;
  const em = () => ctx.orm.em.fork();
  const trigger = `fail_once_${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = em();
    agent = makeAgent(setup, makeServer(setup, makeOrganization(setup, 'Finish Org')));
    agent.status = AgentStatus.ACTIVE;
    setup.create(Webhook, {
      organization: agent.organization,
      url: 'https://hooks.example.com/fleet',
      events: ['execution.failed'],
      enabled: true,
      secretCiphertext: 'unused here',
      secretKeyId: 'k1',
    });
    await setup.flush();
  });
  afterAll(async () => {
    await ctx?.orm.em.fork().execute(`drop trigger if exists ${trigger} on execution_events`);
    await ctx?.orm.em.fork().execute(`drop function if exists ${trigger}()`);
    await ctx?.close();
  });

  it('writes the final status, its event and its webhook row together, so a retry after a failure between them loses none', async () => {
    const setup = em();
    const run = makeExecution(setup, agent);
    await setup.flush();
    // The first final-status event of this run fails to insert; a sequence counts the tries,
    // as it is not rolled back with the transaction.
    await em().execute(`create sequence if not exists ${trigger}_tries`);
    await em().execute(`create or replace function ${trigger}() returns trigger language plpgsql as $$
      begin
        if new.execution_id = '${run.id}' and new.payload->>'phase' = 'status' and nextval('${trigger}_tries') = 1 then
          raise exception 'the disk is full';
        end if;
        return new;
      end $$`);
    await em().execute(`create trigger ${trigger} before insert on execution_events for each row execute function ${trigger}()`);

    await expect(finishExecution(em(), run.id, { status: 'FAILED', error: 'boom' })).rejects.toThrow(/the disk is full/);
    // Nothing of the end was written: the row is still RUNNING, so the retry does the whole of it.
    expect((await em().findOneOrFail(Execution, run.id)).status).toBe(ExecutionStatus.RUNNING);
    await finishExecution(em(), run.id, { status: 'FAILED', error: 'boom' });

    const row = await em().findOneOrFail(Execution, run.id);
    expect(row).toMatchObject({ status: ExecutionStatus.FAILED, error: 'boom' });
    const events = await em().find(ExecutionEvent, { execution: run.id }, { orderBy: { seq: 'asc' } });
    expect(events.map((e) => e.payload)).toEqual([expect.objectContaining({ phase: 'status', status: 'FAILED' })]);
    const alerts = await em().find(WebhookDelivery, { eventType: 'execution.failed', organization: agent.organization.id });
    expect(alerts.map((a) => a.eventId)).toEqual([`execution.failed:${run.id}:1`]);
  });
});
