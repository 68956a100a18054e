import { Webhook as StandardWebhook } from 'standardwebhooks';
import { AuditLog, Webhook, WebhookDelivery, WebhookDeliveryStatus } from '../../../entities';
import { startWebhookDeliveries } from '../../../domain/webhooks/deliveries';
import { insertDeliveries } from '../../../domain/webhooks/outbox';
import { WEBHOOK_RETRY_DELAYS_MS } from '../../../workflows/contracts/webhook-delivery';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { waitFor } from '../../../test/fleet';
import { createWebhookEndpoint, startWebhookReceiver, type WebhookReceiver } from '../../../test/webhook-receiver';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';

interface Delivery {
  id: string;
  messageId: string;
  status: string;
  attempts: number;
  lastResponseCode: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
  eventType: string;
}

/** The organisations of this file, whose webhook deliveries its worker starts (test/harness.ts). */
const organizations: string[] = [];

describe('webhook deliveries', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  const receivers: WebhookReceiver[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Deliveries Org');
    organizations.push(admin.organizationId);
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(receivers.map((r) => r.close()));
    await ctx?.close();
  });

  const as = (account: Account = admin) => ({ Authorization: `Bearer ${account.accessToken}` });
  const receiver = async (answer?: Parameters<typeof startWebhookReceiver>[0]) => {
    const started = await startWebhookReceiver(answer);
    receivers.push(started);
    return started;
  };
  const endpoint = (url: string) => createWebhookEndpoint(http, admin, url);
  async function sendTest(webhookId: string): Promise<Delivery> {
    return (await http.post(`/api/webhooks/${webhookId}/test`).set(as()).expect(202)).body as Delivery;
  }
  async function delivery(webhookId: string, deliveryId: string): Promise<Delivery> {
    const page = (await http.get(`/api/webhooks/${webhookId}/deliveries`).set(as()).expect(200)).body as { items: Delivery[] };
    return page.items.find((d) => d.id === deliveryId)!;
  }
  const settled = (webhookId: string, deliveryId: string, status: string) =>
    waitFor(async () => {
      const d = await delivery(webhookId, deliveryId);
      return d.status === status && d;
    }, 60_000);

  it('delivers a test message sent while no worker runs once a worker is back, signed so standardwebhooks verifies it', async () => {
    const rx = await receiver();
    const hook = await endpoint(rx.url);
    const sent = await sendTest(hook.id);
    expect(sent).toMatchObject({ status: 'PENDING', attempts: 0, eventType: 'webhook.test', messageId: `msg_${sent.id}` });

    worker = await startTestWorker(ctx, undefined, { webhookOutbox: { organizations: () => organizations } });
    const done = await settled(hook.id, sent.id, 'DELIVERED');
    expect(done).toMatchObject({ attempts: 1, lastResponseCode: 204, lastError: null, nextAttemptAt: null });
    expect(rx.received).toHaveLength(1);
    const [message] = rx.received;
    expect(message!.headers['webhook-id']).toBe(sent.messageId);
    const verified = new StandardWebhook(hook.secret).verify(message!.body, message!.headers as Record<string, string>) as {
      type: string;
      data: Record<string, unknown>;
    };
    expect(verified.type).toBe('webhook.test');
    expect(verified.data).toMatchObject({ organizationId: admin.organizationId, webhookId: hook.id, link: `/api/webhooks/${hook.id}` });
  });

  it('retries 429 and 500 as Retry-After says and stops at the first 2xx: one success, one message id', async () => {
    const rx = await receiver((n, res) => {
      if (n === 0) res.writeHead(429, { 'retry-after': '1' }).end();
      else if (n === 1) res.writeHead(500, { 'retry-after': '1' }).end();
      else res.writeHead(200).end('ok');
    });
    const hook = await endpoint(rx.url);
    const counted = async () =>
      Object.fromEntries((await worker!.metrics.webhookDeliveries.get()).values.map((v) => [v.labels.outcome, v.value]));
    const before = await counted();
    const sent = await sendTest(hook.id);
    const done = await settled(hook.id, sent.id, 'DELIVERED');
    expect(done).toMatchObject({ attempts: 3, lastResponseCode: 200 });
    // mcp_fleet_webhook_deliveries_total counts each attempt by its outcome.
    const after = await counted();
    expect([after.retry! - before.retry!, after.delivered! - before.delivered!, after.failed! - before.failed!]).toEqual([2, 1, 0]);
    expect(rx.received).toHaveLength(3);
    expect(new Set(rx.received.map((r) => r.headers['webhook-id']))).toEqual(new Set([sent.messageId]));
    // Each attempt is signed afresh, and each verifies.
    for (const r of rx.received)
      expect(() => new StandardWebhook(hook.secret).verify(r.body, r.headers as Record<string, string>)).not.toThrow();
  });

  it('does not retry a 4xx other than 429, and does not follow a redirect', async () => {
    const gone = await receiver((_n, res) => res.writeHead(410).end());
    const target = await receiver();
    const redirecting = await receiver((_n, res) => res.writeHead(307, { location: target.url }).end());
    const goneHook = await endpoint(gone.url);
    const redirectHook = await endpoint(redirecting.url);
    const a = await sendTest(goneHook.id);
    const b = await sendTest(redirectHook.id);
    expect(await settled(goneHook.id, a.id, 'FAILED')).toMatchObject({ attempts: 1, lastResponseCode: 410, lastError: 'HTTP 410' });
    expect(await settled(redirectHook.id, b.id, 'FAILED')).toMatchObject({ attempts: 1, lastResponseCode: 307 });
    expect(gone.received).toHaveLength(1);
    expect(redirecting.received).toHaveLength(1);
    expect(target.received).toHaveLength(0);
  });

  it('checks the URL policy again at delivery: an address denied since registration is never contacted', async () => {
    const rx = await receiver();
    const hook = await endpoint(rx.url);
    const mcp = ctx.config.mcp;
    // The API and the worker share this config object: the deny list now covers the receiver.
    ctx.config.mcp = { ...mcp, urlDenylist: '127.0.0.1' };
    try {
      const sent = await sendTest(hook.id);
      const failed = await settled(hook.id, sent.id, 'FAILED');
      expect(failed.attempts).toBe(1);
      expect(failed.lastResponseCode).toBeNull();
      expect(failed.lastError).toMatch(/127\.0\.0\.1/);
    } finally {
      ctx.config.mcp = mcp;
    }
    expect(rx.received).toHaveLength(0);
  });

  it('redelivers a finished delivery as the same message; refuses while it is pending', async () => {
    let answers = 0;
    const rx = await receiver((_n, res) => res.writeHead(answers++ === 0 ? 400 : 200).end());
    const hook = await endpoint(rx.url);
    const sent = await sendTest(hook.id);
    await settled(hook.id, sent.id, 'FAILED');
    const again = await http.post(`/api/webhooks/${hook.id}/deliveries/${sent.id}/redeliver`).set(as()).expect(202);
    expect(again.body.status).toBe('PENDING');
    const done = await settled(hook.id, sent.id, 'DELIVERED');
    expect(done.attempts).toBe(2);
    expect(rx.received.map((r) => r.headers['webhook-id'])).toEqual([sent.messageId, sent.messageId]);

    // A delivery still being attempted (the receiver holds the request) is not started twice.
    let release: (() => void) | undefined;
    const slow = await receiver((_n, res) => (release = () => res.writeHead(200).end()));
    const slowHook = await endpoint(slow.url);
    const pending = await sendTest(slowHook.id);
    await waitFor(async () => slow.received.length === 1, 30_000);
    const refused = await http.post(`/api/webhooks/${slowHook.id}/deliveries/${pending.id}/redeliver`).set(as()).expect(409);
    expect(refused.body.error.code).toBe('delivery_pending');
    release!();
    await settled(slowHook.id, pending.id, 'DELIVERED');
  });

  it('answers 403 to OPERATOR and VIEWER and 404 to another organisation on the delivery routes', async () => {
    const rx = await receiver();
    const hook = await endpoint(rx.url);
    const sent = await sendTest(hook.id);
    await settled(hook.id, sent.id, 'DELIVERED');
    for (const role of ['VIEWER', 'OPERATOR']) {
      const member = await addMember(http, admin, role);
      await http.get(`/api/webhooks/${hook.id}/deliveries`).set(as(member)).expect(403);
      await http.post(`/api/webhooks/${hook.id}/test`).set(as(member)).expect(403);
      await http.post(`/api/webhooks/${hook.id}/deliveries/${sent.id}/redeliver`).set(as(member)).expect(403);
    }
    const stranger = await registerAccount(http, 'Stranger Org');
    organizations.push(stranger.organizationId);
    await http.get(`/api/webhooks/${hook.id}/deliveries`).set(as(stranger)).expect(404);
    await http.post(`/api/webhooks/${hook.id}/test`).set(as(stranger)).expect(404);
    await http.post(`/api/webhooks/${hook.id}/deliveries/${sent.id}/redeliver`).set(as(stranger)).expect(404);
    expect(rx.received).toHaveLength(1);
  });
});

describe('an endpoint that failed every delivery for a day', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  const receivers: WebhookReceiver[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx, undefined, { webhookOutbox: { organizations: () => organizations } });
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Dead Endpoint Org');
    organizations.push(admin.organizationId);
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(receivers.map((r) => r.close()));
    await ctx?.close();
  });
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  /**
   * A delivery a day into its schedule: its row as the previous attempts left it (first
   * written 25 h ago, every retry spent), then its workflow makes the last attempt for real.
   */
  async function lastAttempt(webhookId: string, otherDeliveredAt?: Date): Promise<string> {
    const em = ctx.orm.em.fork();
    const webhook = await em.findOneOrFail(Webhook, webhookId);
    const dayAgo = new Date(Date.now() - 25 * 3600_000);
    const event = { organizationId: admin.organizationId, at: dayAgo, data: { webhookId } };
    const [failing] = await insertDeliveries(em, { ...event, id: `old-${webhookId}`, type: 'webhook.test' }, [webhook], false);
    await em.nativeUpdate(WebhookDelivery, failing!.id, { createdAt: dayAgo, attempts: WEBHOOK_RETRY_DELAYS_MS.length });
    if (otherDeliveredAt) {
      const [ok] = await insertDeliveries(em, { ...event, id: `ok-${webhookId}`, type: 'webhook.test' }, [webhook], false);
      await em.nativeUpdate(WebhookDelivery, ok!.id, {
        createdAt: otherDeliveredAt,
        status: WebhookDeliveryStatus.DELIVERED,
        deliveredAt: otherDeliveredAt,
        workflowStartedAt: otherDeliveredAt,
      });
    }
    await startWebhookDeliveries(em, ctx.temporal, ctx.logger, [failing!]);
    return failing!.id;
  }

  it('is disabled after its last retry fails, with an audit row and a webhook.disabled event to the other endpoints', async () => {
    const dead = await startWebhookReceiver((_n, res) => res.writeHead(503).end());
    const watcher = await startWebhookReceiver();
    receivers.push(dead, watcher);
    const hook = (
      await http
        .post('/api/webhooks')
        .set(as())
        .send({ url: dead.url, events: ['execution.failed'] })
        .expect(201)
    ).body;
    await http
      .post('/api/webhooks')
      .set(as())
      .send({ url: watcher.url, events: ['webhook.disabled'] })
      .expect(201);
    await lastAttempt(hook.id);

    const disabled = await waitFor(async () => {
      const read = (await http.get(`/api/webhooks/${hook.id}`).set(as()).expect(200)).body;
      return read.enabled === false && read;
    }, 60_000);
    expect(disabled.disabledReason).toMatch(/^every delivery failed since /);
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: hook.id, action: 'webhook.disabled' });
    expect(audit).toHaveLength(1);
    await waitFor(async () => watcher.received.length === 1, 60_000);
    const told = JSON.parse(watcher.received[0]!.body) as { type: string; data: Record<string, unknown> };
    expect(told).toMatchObject({ type: 'webhook.disabled', data: { webhookId: hook.id, status: 'DISABLED' } });

    // An operator turns it on again: the reason goes.
    const again = await http.put(`/api/webhooks/${hook.id}`).set(as()).send({ enabled: true }).expect(200);
    expect(again.body).toMatchObject({ enabled: true, disabledReason: null });
  });

  it('stays enabled when another delivery reached it during that day', async () => {
    const flaky = await startWebhookReceiver((_n, res) => res.writeHead(503).end());
    receivers.push(flaky);
    const hook = (
      await http
        .post('/api/webhooks')
        .set(as())
        .send({ url: flaky.url, events: ['execution.failed'] })
        .expect(201)
    ).body;
    const id = await lastAttempt(hook.id, new Date(Date.now() - 3600_000));
    await waitFor(async () => {
      const row = await ctx.orm.em.fork().findOne(WebhookDelivery, id);
      return row?.status === WebhookDeliveryStatus.FAILED;
    }, 60_000);
    expect((await http.get(`/api/webhooks/${hook.id}`).set(as()).expect(200)).body).toMatchObject({ enabled: true, disabledReason: null });
    expect(await ctx.orm.em.fork().count(AuditLog, { resourceId: hook.id, action: 'webhook.disabled' })).toBe(0);
  });
});
