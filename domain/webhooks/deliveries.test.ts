import { randomUUID } from 'node:crypto';
import { Client, type WorkflowClientInterceptor } from '@temporalio/client';
import { Webhook, WebhookDelivery } from '../../entities';
import { httpFor, registerAccount } from '../../test/api';
import { createTestContext, type TestContext } from '../../test/harness';
import { webhookDeliveryWorkflowId } from '../../workflows/contracts/webhook-delivery';
import { startWebhookDeliveries, WEBHOOK_START_CONCURRENCY } from './deliveries';
import { insertDeliveries } from './outbox';

/**
 * Starting the outbox's rows: a burst of events (many runs failing together) is one drain of
 * many rows, whose starts go to Temporal side by side, not one round trip after another.
 */
describe('startWebhookDeliveries', () => {
  let ctx: TestContext;
  const workflowIds: string[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    // No worker polls this file's task queue: the started deliveries would wait there forever.
    await Promise.allSettled(workflowIds.map((id) => ctx.temporal.client.workflow.getHandle(id).terminate('test over')));
    await ctx?.close();
  });

  it('keeps several starts in flight, never more than WEBHOOK_START_CONCURRENCY, and marks every row started', async () => {
    const http = httpFor(ctx);
    const account = await registerAccount(http, 'Burst Org');
    const hook = (
      await http
        .post('/api/webhooks')
        .set({ Authorization: `Bearer ${account.accessToken}` })
        .send({ url: 'http://127.0.0.1:9/alerts', events: ['execution.failed'] })
        .expect(201)
    ).body as { id: string };
    const em = ctx.orm.em.fork();
    const webhook = await em.findOneOrFail(Webhook, hook.id);
    const rows: WebhookDelivery[] = [];
    for (let i = 0; i < WEBHOOK_START_CONCURRENCY * 3; i++) {
      const executionId = randomUUID();
      const event = {
        id: `execution.failed:${executionId}:1`,
        type: 'execution.failed' as const,
        organizationId: account.organizationId,
        at: new Date(),
        data: { executionId, status: 'FAILED', link: `/api/executions/${executionId}` },
      };
      rows.push(...(await insertDeliveries(em, event, [webhook], false)));
    }
    workflowIds.push(...rows.map((row) => webhookDeliveryWorkflowId(row.id)));

    // The real client, watched: how many start requests are out at once.
    let inFlight = 0;
    let mostInFlight = 0;
    const watch: WorkflowClientInterceptor = {
      async startWithDetails(input, next) {
        mostInFlight = Math.max(mostInFlight, ++inFlight);
        try {
          return await next(input);
        } finally {
          inFlight--;
        }
      },
    };
    const client = new Client({
      connection: ctx.temporal.connection,
      namespace: ctx.config.temporal.namespace,
      interceptors: { workflow: [watch] },
    });

    const started = await startWebhookDeliveries(em, { client, taskQueue: ctx.config.temporal.taskQueue }, ctx.logger, rows);

    expect(started).toBe(rows.length);
    expect(mostInFlight).toBeGreaterThan(1);
    expect(mostInFlight).toBeLessThanOrEqual(WEBHOOK_START_CONCURRENCY);
    const marked = await ctx.orm.em.fork().find(WebhookDelivery, { id: { $in: rows.map((r) => r.id) } });
    expect(marked.filter((row) => row.workflowStartedAt)).toHaveLength(rows.length);
    const described = await Promise.all(workflowIds.map((id) => ctx.temporal.client.workflow.getHandle(id).describe()));
    expect(described.every((d) => d.status.name === 'RUNNING')).toBe(true);
  });
});
