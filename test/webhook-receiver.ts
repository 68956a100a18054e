import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Account, Http } from './api';

/** What a webhook receiver got: one entry per request, in arrival order. */
export interface WebhookReceiver {
  url: string;
  received: { headers: IncomingHttpHeaders; body: string }[];
  close(): Promise<void>;
}

/**
 * A real HTTP receiver on a loopback port. `answer` says how to answer the n-th request
 * (0-based); one that never answers holds the request open until `close` or its sender goes.
 */
export async function startWebhookReceiver(
  answer: (n: number, res: ServerResponse) => void = (_n, res) => res.writeHead(204).end(),
): Promise<WebhookReceiver> {
  const received: WebhookReceiver['received'] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ headers: req.headers, body });
      answer(received.length - 1, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A webhook endpoint of `account`'s organisation at `url`, subscribed to `events`: its id and its signing secret. */
export async function createWebhookEndpoint(
  http: Http,
  account: Account,
  url: string,
  events: string[] = ['execution.failed'],
): Promise<{ id: string; secret: string }> {
  const res = await http
    .post('/api/webhooks')
    .set({ Authorization: `Bearer ${account.accessToken}` })
    .send({ url, events })
    .expect(201);
  return res.body as { id: string; secret: string };
}
