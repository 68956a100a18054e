/**
 * The live feeds' fixture: two API instances, each with its own LISTEN connection as two
 * processes would have, a worker, and an ACTIVE agent on a reference host, with helpers to open
 * Socket.IO sockets and SSE streams on either instance and to see them end.
 * `useTwoInstances(...)` registers its own beforeAll/afterAll in the calling describe.
 */
import http from 'node:http';
import request from 'supertest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import type { AgentExecutionPayload } from '../domain/events';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeAck } from '../api/realtime/socket-events';
import { RealtimeHub } from '../api/realtime/hub';
import { startApiServer, type ApiServer } from '../api/server';
import { registerAccount, type Account } from './api';
import { activeAgent, registerHost } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

export type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

/** How a socket ended: the `session:ended` reason it was told, and socket.io's disconnect reason. */
export interface Ending {
  reason: string | undefined;
  disconnect: string;
}

export interface Stream {
  text(): string;
  /** Resolves with the whole body when the server ends the response. */
  ended: Promise<string>;
  close(): void;
}

export interface TwoInstances {
  ctx: TestContext;
  /** The first instance, and a supertest client on it. */
  api: ApiServer;
  client: ReturnType<typeof request>;
  /** The second instance, with its own realtime hub. */
  other: ApiServer;
  otherHub: RealtimeHub;
  admin: Account;
  serverId: string;
  agentId: string;
  /** Run when the describe ends, last added first. */
  closers: Array<() => Promise<unknown> | unknown>;
  /** A socket on `url` (the first instance by default), with the token in `auth` or in an Authorization header. */
  tryConnect(options: { token?: string; header?: string }, url?: string): Promise<FleetClient>;
  /** A connected socket that records its agent:execution events and how it ended. */
  connect(token: string, url?: string): Promise<FleetClient & { ending: Promise<Ending>; executions: AgentExecutionPayload[] }>;
  subscribe(socket: FleetClient, agentId?: string): Promise<SubscribeAck>;
  /** An execution that runs until cancelled, so that its SSE stream stays open. */
  hangingExecution(): Promise<string>;
  /** An SSE stream of the execution's events, resolved once the stored events (QUEUED at least) were sent. */
  openStream(token: string, executionId: string, url?: string): Promise<Stream>;
}

export function useTwoInstances(organizationName: string): TwoInstances {
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  const fixture = { closers: [] } as unknown as TwoInstances;
  const as = (token: string) => ({ Authorization: `Bearer ${token}` });

  beforeAll(async () => {
    const ctx = await createTestContext();
    fixture.ctx = ctx;
    worker = await startTestWorker(ctx);
    const trusting = { ...ctx.config, http: { ...ctx.config.http, trustProxy: true } };
    fixture.api = await startApiServer({ ...ctx, config: trusting }, 0, '127.0.0.1');
    fixture.otherHub = new RealtimeHub(ctx.config.database.url!, ctx.orm, ctx.logger);
    await fixture.otherHub.start();
    fixture.other = await startApiServer({ ...ctx, config: trusting, events: fixture.otherHub }, 0, '127.0.0.1');
    fixture.client = request(fixture.api.url);
    fixture.admin = await registerAccount(fixture.client, organizationName);
    const registered = await registerHost(fixture.client, fixture.admin);
    fixture.closers.push(() => registered.host.close());
    fixture.serverId = registered.serverId;
    fixture.agentId = (await activeAgent(fixture.client, fixture.admin, registered.serverId, { maxConcurrency: 20 })).id;
  });
  afterAll(async () => {
    for (const close of fixture.closers.reverse()) await close();
    await fixture.other?.close();
    await fixture.otherHub?.close();
    await fixture.api?.close();
    await worker?.stop();
    await fixture.ctx?.close();
  });

  fixture.tryConnect = (options, url = fixture.api.url) => {
    const socket: FleetClient = connectSocket(url, {
      ...(options.token ? { auth: { token: options.token } } : {}),
      ...(options.header ? { extraHeaders: as(options.header) } : {}),
      transports: ['websocket'],
      reconnection: false,
    });
    fixture.closers.push(() => socket.close());
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('connect_error', reject);
    });
  };

  fixture.connect = async (token, url) => {
    const socket = await fixture.tryConnect({ token }, url);
    const executions: AgentExecutionPayload[] = [];
    socket.on('agent:execution', (e) => executions.push(e));
    let reason: string | undefined;
    socket.on('session:ended', (payload) => (reason = payload.reason));
    const ending = new Promise<Ending>((resolve) => socket.once('disconnect', (disconnect) => resolve({ reason, disconnect })));
    return Object.assign(socket, { ending, executions });
  };

  fixture.subscribe = (socket, agentId = fixture.agentId) => new Promise((resolve) => socket.emit('subscribe:agent', { agentId }, resolve));

  fixture.hangingExecution = async () => {
    const res = await fixture.client
      .post(`/api/agents/${fixture.agentId}/execute`)
      .set(as(fixture.admin.accessToken))
      .send({ prompt: 'wait for me [hang]' })
      .expect(202);
    const id = res.body.executionId as string;
    fixture.closers.push(() => fixture.client.post(`/api/executions/${id}/cancel`).set(as(fixture.admin.accessToken)));
    return id;
  };

  fixture.openStream = (token, executionId, url = fixture.api.url) =>
    new Promise((resolve, reject) => {
      const req = http.get(
        `${url}/api/executions/${executionId}/events`,
        { headers: { ...as(token), Accept: 'text/event-stream' } },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`SSE answered ${res.statusCode}`));
          let text = '';
          const ended = new Promise<string>((done) => res.on('end', () => done(text)));
          res.on('data', (chunk: Buffer) => {
            text += chunk.toString();
            if (text.includes('id: 1\n')) resolve({ text: () => text, ended, close: () => req.destroy() });
          });
        },
      );
      req.on('error', reject);
      fixture.closers.push(() => req.destroy());
    });

  return fixture;
}

/** Rejects when `promise` has not settled within `ms`: proves that something did end. */
export function within<T>(promise: Promise<T>, ms = 30_000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(timer));
}
