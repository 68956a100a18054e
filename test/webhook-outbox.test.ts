import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { WebhookDelivery, WebhookDeliveryStatus } from '../entities';
import { recordWebhookEvent } from '../domain/webhooks/outbox';
import { webhookDeliveryWorkflowId } from '../workflows/contracts/webhook-delivery';
import { OUTBOX_GRACE_MS } from '../worker/webhook-outbox';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { waitFor } from './fleet';
import { createWebhookEndpoint, startWebhookReceiver, type WebhookReceiver } from './webhook-receiver';
import { createTestContext, spawnWorkerProcess, startTestWorker, type TestContext } from './harness';

/**
 * The webhook outbox through a worker's absence and death: events raised while no worker runs
 * are delivered once one starts, and a worker killed with a request out hands the attempt to
 * another, which sends the same message (same `webhook-id`) so the receiver can dedupe.
 */

/** The organisations of this file, whose outbox rows its in-process worker starts. */
const organizations: string[] = [];

describe('the webhook outbox across workers', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  const receivers: WebhookReceiver[] = [];
  const children: ChildProcess[] = [];
  const stops: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Outbox Org');
    organizations.push(admin.organizationId);
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const stop of stops) await stop();
    await Promise.all(receivers.map((r) => r.close()));
    await ctx?.close();
  });

  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });
  const endpoint = (url: string) => createWebhookEndpoint(http, admin, url);
  const rowsOf = (webhookId: string) => ctx.orm.em.fork().find(WebhookDelivery, { webhook: webhookId }, { orderBy: { createdAt: 'asc' } });

  it('delivers the events raised while no worker ran once a worker starts: each once, one message id per event', async () => {
    const rx = await startWebhookReceiver((_n, res) => res.writeHead(204).end());
    receivers.push(rx);
    const hook = await endpoint(rx.url);
    const events = [randomUUID(), randomUUID(), randomUUID()].map((executionId) => ({
      id: `execution.failed:${executionId}`,
      type: 'execution.failed' as const,
      organizationId: admin.organizationId,
      at: new Date(),
      data: { executionId, status: 'FAILED', link: `/api/executions/${executionId}` },
    }));
    // Raised as the fleet raises them (in a transaction, with the commit's notice), while no
    // worker listens; the first one twice, as a retried activity would.
    for (const event of [...events, events[0]!]) await ctx.orm.em.fork().transactional((em) => recordWebhookEvent(em, event));
    const waiting = await rowsOf(hook.id);
    expect(waiting).toHaveLength(3);
    expect(waiting.every((row) => row.status === WebhookDeliveryStatus.PENDING && !row.workflowStartedAt)).toBe(true);

    const worker = await startTestWorker(ctx, undefined, { webhookOutbox: { organizations: () => organizations } });
    // Stopped before the next test, whose deliveries must go to the worker processes it kills.
    stops.push(() => worker.stop());
    try {
      const delivered = await waitFor(async () => {
        const rows = await rowsOf(hook.id);
        return rows.every((row) => row.status === WebhookDeliveryStatus.DELIVERED) && rows;
      }, 60_000);
      expect(rx.received).toHaveLength(3);
      expect(new Set(rx.received.map((r) => r.headers['webhook-id']))).toEqual(new Set(delivered.map((row) => `msg_${row.id}`)));
      expect(rx.received.map((r) => (JSON.parse(r.body) as { data: { executionId: string } }).data.executionId).sort()).toEqual(
        events.map((e) => e.data.executionId).sort(),
      );
      // One workflow per row, started by the drain at the worker's start, not by the periodic
      // sweep (which leaves rows younger than OUTBOX_GRACE_MS to their writer).
      for (const row of delivered) {
        expect(row.attempts).toBe(1);
        expect(row.workflowStartedAt!.getTime() - row.createdAt.getTime()).toBeLessThan(OUTBOX_GRACE_MS);
        const handle = ctx.temporal.client.workflow.getHandle(webhookDeliveryWorkflowId(row.id));
        expect(await handle.result()).toEqual({ outcome: 'delivered', attempts: 1 });
      }
      const counted = await worker.metrics.webhookDeliveries.get();
      expect(counted.values.find((v) => v.labels.outcome === 'delivered')?.value).toBe(3);
    } finally {
      await stops.pop()!();
    }
  }, 90_000);

  it('hands an attempt whose worker was killed mid-request to another worker: the same message again, recorded once', async () => {
    // The first request is held unanswered until its sender dies; later ones are taken.
    const rx = await startWebhookReceiver((n, res) => {
      if (n > 0) res.writeHead(204).end();
    });
    receivers.push(rx);
    const hook = await endpoint(rx.url);
    const first = spawnWorkerProcess(ctx);
    children.push(first);
    // The API starts a test message's workflow itself; the worker process attempts it.
    const sent = (await http.post(`/api/webhooks/${hook.id}/test`).set(as()).expect(202)).body as { id: string; messageId: string };
    await waitFor(async () => rx.received.length === 1, 60_000);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    expect(rx.received).toHaveLength(1);

    const second = spawnWorkerProcess(ctx);
    children.push(second);
    const done = await waitFor(async () => {
      const row = await ctx.orm.em.fork().findOneOrFail(WebhookDelivery, sent.id);
      return row.status !== WebhookDeliveryStatus.PENDING && row;
    }, 90_000);
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));

    // Delivered by the second worker, as the same message: the receiver dedupes on webhook-id.
    expect(done).toMatchObject({ status: WebhookDeliveryStatus.DELIVERED, attempts: 1, lastResponseCode: 204 });
    expect(rx.received).toHaveLength(2);
    expect(rx.received.map((r) => r.headers['webhook-id'])).toEqual([sent.messageId, sent.messageId]);
    for (const r of rx.received)
      expect(() => new StandardWebhook(hook.secret).verify(r.body, r.headers as Record<string, string>)).not.toThrow();
    expect(await rowsOf(hook.id)).toHaveLength(1);
  }, 180_000);
});
