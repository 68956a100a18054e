import { randomUUID } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import request from 'supertest';
import { Agent, AgentStatus, Organization } from '../../entities';
import { publishEvent } from '../../domain/events';
import { appendEvent, executionNotice } from '../../domain/runs/execution-log';
import { executionRef } from '../../domain/runs/execution-status';
import { initOrm, type Orm } from '../../lib/orm';
import { makeAgent, makeExecution, makeOrganization, makeServer } from '../../test/factories';
import { waitFor } from '../../test/fleet';
import { registerAccount } from '../../test/api';
import { createTestContext, type TestContext } from '../../test/harness';
import { createApp } from '../app';
import { startApiServer, type ApiServer } from '../server';
import { RealtimeHub, type HubEvent } from './hub';

/** A loopback proxy to PostgreSQL that can be made to cut every connection and refuse new ones, as a database gone away. */
async function switchableProxy(targetPort: number) {
  let refusing = false;
  const open = new Set<net.Socket>();
  const server = net.createServer((client) => {
    client.on('error', () => undefined);
    if (refusing) {
      proxy.refused++;
      client.destroy();
      return;
    }
    const upstream = net.connect(targetPort, '127.0.0.1');
    upstream.on('error', () => undefined);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.on('close', () => open.delete(socket));
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy = {
    port: (server.address() as net.AddressInfo).port,
    /** Connections refused so far. */
    refused: 0,
    refuse(on: boolean) {
      refusing = on;
      if (on) for (const socket of open) socket.destroy();
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return proxy;
}

describe('the realtime hub after a lost LISTEN connection', () => {
  let ctx: TestContext;
  let agent: Agent;

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = ctx.orm.em.fork();
    agent = makeAgent(setup, makeServer(setup, makeOrganization(setup, 'Hub Catch-up Org')));
    agent.status = AgentStatus.ACTIVE;
    await setup.flush();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('replays the events it missed even when its first read of the log finds the database still away', async () => {
    const setup = ctx.orm.em.fork();
    const execution = makeExecution(setup, agent);
    await setup.flush();
    const url = ctx.config.database.url!;
    const proxied = new URL(url);
    const proxy = await switchableProxy(Number(proxied.port));
    proxied.port = String(proxy.port);
    let orm: Orm | undefined;
    let hub: RealtimeHub | undefined;
    try {
      // The hub LISTENs on the database itself, and reads the log through the proxy.
      orm = await initOrm(proxied.toString(), { poolMax: 1, logger: ctx.logger });
      hub = new RealtimeHub(url, orm, ctx.logger);
      await hub.start();
      const received: HubEvent[] = [];
      hub.subscribe((event) => received.push(event));

      // An event whose notice was lost with the connection: its row only.
      proxy.refuse(true);
      await ctx.orm.em.execute(
        `insert into execution_events (id, execution_id, organization_id, seq, type, attempt, payload, created_at)
         values (?, ?, ?, 1, 'output', 1, ?::jsonb, now())`,
        [
          randomUUID(),
          execution.id,
          agent.organization.id,
          JSON.stringify({
            agentId: agent.id,
            executionId: execution.id,
            seq: 1,
            attempt: 1,
            phase: 'output',
            output: 'missed',
            at: new Date(),
          }),
        ],
      );
      hub.simulateConnectionLoss();
      // The LISTEN comes back (on the database itself) while the log's reader still finds it
      // away: its catch-up has tried and been refused.
      await waitFor(async () => proxy.refused > 0, 30_000, 20);
      proxy.refuse(false);

      const replayed = await waitFor(
        async () => received.find((e) => e.type === 'execution:event' && e.executionId === execution.id),
        30_000,
        50,
      );
      expect(replayed).toMatchObject({ seq: 1, payload: { output: 'missed' } });
      expect(received.some((e) => e.type === 'hub:reconnected')).toBe(true);
    } finally {
      await hub?.close();
      await orm?.close(true);
      await proxy.close();
    }
  });
});

describe('an SSE stream whose gap cannot be filled from the log', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('ends, for its client to resume with Last-Event-ID, when the database is away, instead of failing unseen and staying open', async () => {
    const account = await registerAccount(request(createApp(ctx).callback()), 'SSE Gap Org');
    const setup = ctx.orm.em.fork();
    const agent = makeAgent(setup, makeServer(setup, setup.getReference(Organization, account.organizationId)));
    const execution = makeExecution(setup, agent);
    await setup.flush();
    const ref = executionRef(execution);
    const first = await appendEvent(ctx.orm.em.fork(), ref, 1, 'output', { output: 'one' });

    const url = ctx.config.database.url!;
    const proxied = new URL(url);
    const proxy = await switchableProxy(Number(proxied.port));
    proxied.port = String(proxy.port);
    let orm: Orm | undefined;
    let hub: RealtimeHub | undefined;
    let api: ApiServer | undefined;
    let stream: http.ClientRequest | undefined;
    try {
      // The API reads the database through the proxy; its hub LISTENs on the database itself.
      orm = await initOrm(proxied.toString(), { poolMax: 2, logger: ctx.logger });
      hub = new RealtimeHub(url, orm, ctx.logger);
      await hub.start();
      api = await startApiServer({ ...ctx, orm, events: hub }, 0, '127.0.0.1');
      let text = '';
      let ended = false;
      stream = http.get(
        `${api.url}/api/executions/${execution.id}/events`,
        { headers: { Accept: 'text/event-stream', Authorization: `Bearer ${account.accessToken}` } },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => (ended = true));
        },
      );
      stream.on('error', () => undefined);
      await waitFor(async () => text.includes('id: 1\n'), 30_000);

      // The database goes away; an event arrives live with the one before it missing.
      proxy.refuse(true);
      await publishEvent(ctx.orm.em.fork(), executionNotice(ref, { ...first, seq: 3, output: 'three' }));
      await waitFor(async () => ended, 30_000);
      expect(text).not.toContain('id: 3');
    } finally {
      stream?.destroy();
      await api?.close();
      await hub?.close();
      await orm?.close(true);
      await proxy.close();
    }
  });
});
