import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import type { AgentHost } from '../../../host/server';
import { httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { activeAgent, registerHost, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';

interface Message {
  headers: IncomingHttpHeaders;
  body: string;
  json: { type: string; timestamp: string; data: Record<string, unknown> };
}

/**
 * Events raised by the fleet reach the endpoints subscribed to them: written with the change
 * (the outbox), started by the worker, signed, small, and without prompt text or outputs.
 */
/** The organisations of this file, whose webhook deliveries its worker starts (test/harness.ts). */
const organizations: string[] = [];

describe('webhook events from the fleet', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  const hosts: AgentHost[] = [];
  const messages: Message[] = [];
  let receiverUrl: string;
  let closeReceiver: () => Promise<void>;

  beforeAll(async () => {
    const server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        messages.push({ headers: req.headers, body, json: JSON.parse(body) as Message['json'] });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`;
    closeReceiver = () => new Promise<void>((resolve) => server.close(() => resolve()));
    ctx = await createTestContext();
    worker = await startTestWorker(ctx, undefined, { webhookOutbox: { organizations: () => organizations } });
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Alerts Org');
    organizations.push(admin.organizationId);
  }, 60_000);
  afterAll(async () => {
    for (const host of hosts) await host.close();
    await worker?.stop();
    await ctx?.close();
    await closeReceiver?.();
  });

  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });
  const messagesOf = (type: string) => messages.filter((m) => m.json.type === type);

  it('tells a subscribed endpoint that a run failed, once, with ids and no prompt text or output', async () => {
    const hook = (
      await http
        .post('/api/webhooks')
        .set(as())
        .send({ url: receiverUrl, events: ['execution.failed', 'server.offline'] })
        .expect(201)
    ).body as { id: string; secret: string };
    const { host, serverId } = await registerHost(http, admin);
    hosts.push(host);
    const agent = await activeAgent(http, admin, serverId);
    const prompt = 'secret plan for the quarterly numbers [fail]';
    const run = (await http.post(`/api/agents/${agent.id}/execute`).set(as()).send({ prompt }).expect(202)).body.executionId as string;

    const [message] = await waitFor(async () => messagesOf('execution.failed').length > 0 && messagesOf('execution.failed'), 60_000);
    expect(new StandardWebhook(hook.secret).verify(message!.body, message!.headers as Record<string, string>)).toBeTruthy();
    expect(message!.json.data).toMatchObject({
      organizationId: admin.organizationId,
      executionId: run,
      agentId: agent.id,
      status: 'FAILED',
      link: `/api/executions/${run}`,
    });
    expect(message!.body).not.toContain('quarterly');
    expect(message!.body).not.toContain('script engine'); // the run's output
    expect(message!.body.length).toBeLessThan(2000);

    // The server going away is its own event, to the same endpoint.
    await host.close();
    await http.post(`/api/servers/${serverId}/test`).set(as()).expect(200);
    const [offline] = await waitFor(async () => messagesOf('server.offline').length > 0 && messagesOf('server.offline'), 60_000);
    expect(offline!.json.data).toMatchObject({ serverId, status: 'OFFLINE', link: `/api/servers/${serverId}` });

    const deliveries = (await http.get(`/api/webhooks/${hook.id}/deliveries`).set(as()).expect(200)).body.items as {
      eventType: string;
      status: string;
    }[];
    await waitFor(async () => {
      const items = (await http.get(`/api/webhooks/${hook.id}/deliveries`).set(as()).expect(200)).body.items as { status: string }[];
      return items.every((d) => d.status === 'DELIVERED');
    }, 30_000);
    // One message per event: no event gave two message ids.
    expect(messagesOf('execution.failed')).toHaveLength(1);
    expect(new Set(messages.map((m) => m.headers['webhook-id'])).size).toBe(messages.length);
    expect(deliveries.map((d) => d.eventType).sort()).toEqual(['execution.failed', 'server.offline']);
  });

  it('does not send an endpoint the events it did not subscribe to, nor another organisation’s', async () => {
    const other = await registerAccount(http, 'Quiet Org');
    organizations.push(other.organizationId);
    const quiet = (
      await http
        .post('/api/webhooks')
        .set({ Authorization: `Bearer ${other.accessToken}` })
        .send({ url: receiverUrl, events: ['tool.drift'] })
        .expect(201)
    ).body as { id: string };
    const before = messages.length;
    const { host, serverId } = await registerHost(http, other);
    hosts.push(host);
    const agent = await activeAgent(http, other, serverId);
    const run = (
      await http
        .post(`/api/agents/${agent.id}/execute`)
        .set({ Authorization: `Bearer ${other.accessToken}` })
        .send({ prompt: 'no alert [fail]' })
        .expect(202)
    ).body.executionId as string;
    await waitFor(
      async () => (await http.get(`/api/executions/${run}`).set({ Authorization: `Bearer ${other.accessToken}` })).body.status === 'FAILED',
      60_000,
    );
    const items = (
      await http
        .get(`/api/webhooks/${quiet.id}/deliveries`)
        .set({ Authorization: `Bearer ${other.accessToken}` })
        .expect(200)
    ).body.items as unknown[];
    expect(items).toEqual([]);
    // Nor did Alerts Org's endpoint hear of Quiet Org's failure.
    expect(messages.slice(before).filter((m) => m.json.data.executionId === run)).toEqual([]);
  });
});
