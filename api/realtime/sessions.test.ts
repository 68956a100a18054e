import http from 'node:http';
import request from 'supertest';
import { io as connectSocket, type Socket } from 'socket.io-client';
import type { AgentExecutionPayload } from '../../domain/events';
import type { ClientToServerEvents, ServerToClientEvents, SubscribeAck } from './socket-events';
import { addMember, PASSWORD, randomIp, registerAccount, type Account } from '../../test/api';
import { activeAgent, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';
import { startApiServer, type ApiServer } from '../server';
import { RealtimeHub } from './hub';

type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

interface Ending {
  /** What the server said in `session:ended` before it closed the socket. */
  reason?: string;
  /** Socket.IO's disconnect reason on the client. */
  disconnect: string;
}

interface Stream {
  text(): string;
  /** Resolves with the whole body when the server ends the response. */
  ended: Promise<string>;
  close(): void;
}

/**
 * Open sockets and SSE streams end with their session: logout, refresh-token reuse, a deleted
 * user, a role change and an expired access token each reach them at once, on every API instance.
 */
describe('realtime feeds end with their session', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let other: ApiServer;
  let otherHub: RealtimeHub;
  let client: ReturnType<typeof request>;
  let admin: Account;
  let serverId: string;
  let agentId: string;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    const trusting = { ...ctx.config, http: { ...ctx.config.http, trustProxy: true } };
    api = await startApiServer({ ...ctx, config: trusting }, 0, '127.0.0.1');
    // A second API instance with its own LISTEN connection, as a second process would have.
    otherHub = new RealtimeHub(ctx.config.database.url!, ctx.orm, ctx.logger);
    await otherHub.start();
    other = await startApiServer({ ...ctx, config: trusting, events: otherHub }, 0, '127.0.0.1');
    client = request(api.url);
    admin = await registerAccount(client, 'Session Feeds Org');
    const registered = await registerHost(client, admin);
    closers.push(() => registered.host.close());
    serverId = registered.serverId;
    agentId = (await activeAgent(client, admin, serverId, { maxConcurrency: 20 })).id;
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await other?.close();
    await otherHub?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
  });

  const as = (account: Pick<Account, 'accessToken'>) => ({ Authorization: `Bearer ${account.accessToken}` });

  async function login(account: Pick<Account, 'email'>, via = client): Promise<Account & { role: string }> {
    const res = await via
      .post('/api/auth/login')
      .set('X-Forwarded-For', randomIp())
      .send({ email: account.email, password: PASSWORD })
      .expect(200);
    return {
      email: account.email,
      userId: res.body.user.id,
      organizationId: res.body.organization.id,
      accessToken: res.body.accessToken,
      refreshToken: res.body.refreshToken,
      role: res.body.user.role,
    };
  }

  function tryConnect(token: string, url = api.url): Promise<FleetClient> {
    const socket: FleetClient = connectSocket(url, { auth: { token }, transports: ['websocket'], reconnection: false });
    closers.push(() => socket.close());
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(socket));
      socket.once('connect_error', reject);
    });
  }

  async function connect(
    token: string,
    url = api.url,
  ): Promise<FleetClient & { ending: Promise<Ending>; executions: AgentExecutionPayload[] }> {
    const socket = await tryConnect(token, url);
    const executions: AgentExecutionPayload[] = [];
    socket.on('agent:execution', (e) => executions.push(e));
    let reason: string | undefined;
    socket.on('session:ended', (payload) => (reason = payload.reason));
    const ending = new Promise<Ending>((resolve) => socket.once('disconnect', (disconnect) => resolve({ reason, disconnect })));
    return Object.assign(socket, { ending, executions });
  }

  function subscribe(socket: FleetClient, id = agentId): Promise<SubscribeAck> {
    return new Promise((resolve) => socket.emit('subscribe:agent', { agentId: id }, resolve));
  }

  /** An execution that runs until cancelled, so that its SSE stream stays open. */
  async function hangingExecution(): Promise<string> {
    const res = await client.post(`/api/agents/${agentId}/execute`).set(as(admin)).send({ prompt: 'wait for me [hang]' }).expect(202);
    const id = res.body.executionId as string;
    closers.push(() => client.post(`/api/executions/${id}/cancel`).set(as(admin)));
    return id;
  }

  async function openStream(token: string, executionId: string, url = api.url): Promise<Stream> {
    return new Promise((resolve, reject) => {
      const req = http.get(
        `${url}/api/executions/${executionId}/events`,
        { headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' } },
        (res) => {
          if (res.statusCode !== 200) return reject(new Error(`SSE answered ${res.statusCode}`));
          let text = '';
          const ended = new Promise<string>((done) => res.on('end', () => done(text)));
          res.on('data', (chunk: Buffer) => {
            text += chunk.toString();
            // Open once the stored events (the QUEUED status at least) have been sent.
            if (text.includes('id: 1\n')) resolve({ text: () => text, ended, close: () => req.destroy() });
          });
        },
      );
      req.on('error', reject);
      closers.push(() => req.destroy());
    });
  }

  /** Rejects when `promise` has not settled within `ms` (to prove that something did end). */
  function within<T>(promise: Promise<T>, ms = 5000): Promise<T> {
    let timer: NodeJS.Timeout;
    return Promise.race([
      promise,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`still open after ${ms} ms`)), ms))),
    ]).finally(() => clearTimeout(timer));
  }

  it('logout disconnects the sockets and ends the SSE streams of that login, and only of that login', async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const secondLogin = await login(member);
    const mine = await connect(member.accessToken);
    const theirs = await connect(secondLogin.accessToken);
    expect(await subscribe(mine)).toEqual({ ok: true });
    expect(await subscribe(theirs)).toEqual({ ok: true });
    const stream = await openStream(member.accessToken, await hangingExecution());

    await client.post('/api/auth/logout').send({ refreshToken: member.refreshToken }).expect(204);

    expect(await within(mine.ending)).toEqual({ reason: 'logout', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toMatch(/event: session_ended\ndata: {"reason":"logout"}\n\n$/);
    await expect(tryConnect(member.accessToken)).rejects.toThrow(/unauthorized/);

    // The user's other login keeps its feed.
    const id = (await client.post(`/api/agents/${agentId}/execute`).set(as(admin)).send({ prompt: 'after the logout' }).expect(202)).body
      .executionId;
    await waitFor(async () => theirs.executions.some((e) => e.executionId === id && e.status === 'COMPLETED'));
    expect(theirs.connected).toBe(true);
    expect(mine.executions.some((e) => e.executionId === id)).toBe(false);
  });

  it('a reused refresh token revokes the family: its sockets and streams end', async () => {
    const member = await addMember(client, admin, 'VIEWER');
    const rotated = await client.post('/api/auth/refresh').send({ refreshToken: member.refreshToken }).expect(200);
    const socket = await connect(rotated.body.accessToken);
    const older = await connect(member.accessToken);
    const stream = await openStream(rotated.body.accessToken, await hangingExecution());

    await client.post('/api/auth/refresh').send({ refreshToken: member.refreshToken }).expect(401);

    expect(await within(socket.ending)).toEqual({ reason: 'refresh_reused', disconnect: 'io server disconnect' });
    expect(await within(older.ending)).toEqual({ reason: 'refresh_reused', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toContain('"reason":"refresh_reused"');
  });

  it('deleting a user disconnects every login of that user', async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const sockets = [await connect(member.accessToken), await connect((await login(member)).accessToken)];
    const stream = await openStream(member.accessToken, await hangingExecution());

    await client.delete(`/api/users/${member.userId}`).set(as(admin)).expect(204);

    for (const socket of sockets)
      expect(await within(socket.ending)).toEqual({ reason: 'user_deleted', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toContain('"reason":"user_deleted"');
  });

  it('a role change disconnects the user, who reconnects with the same token and the new role', async () => {
    const member = await addMember(client, admin, 'VIEWER');
    const socket = await connect(member.accessToken);
    const stream = await openStream(member.accessToken, await hangingExecution());
    const untouched = await connect((await addMember(client, admin, 'VIEWER')).accessToken);

    await client.patch(`/api/users/${member.userId}`).set(as(admin)).send({ name: 'Renamed only' }).expect(200);
    await client.patch(`/api/users/${member.userId}`).set(as(admin)).send({ role: 'OPERATOR' }).expect(200);

    expect(await within(socket.ending)).toEqual({ reason: 'role_changed', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toContain('"reason":"role_changed"');
    const again = await connect(member.accessToken);
    expect(await subscribe(again)).toEqual({ ok: true });
    expect(again.connected && untouched.connected).toBe(true);
  });

  it('the access token expiring ends the socket and the SSE stream', async () => {
    const short = await startApiServer(
      {
        ...ctx,
        config: { ...ctx.config, auth: { ...ctx.config.auth, accessTokenTtlSeconds: 4 }, http: { ...ctx.config.http, trustProxy: true } },
      },
      0,
      '127.0.0.1',
    );
    closers.push(() => short.close());
    const member = await addMember(client, admin, 'VIEWER');
    const executionId = await hangingExecution();
    const session = await login(member, request(short.url));
    const expiresAt = (JSON.parse(Buffer.from(session.accessToken.split('.')[1]!, 'base64url').toString()) as { exp: number }).exp * 1000;
    const socket = await connect(session.accessToken, short.url);
    const stream = await openStream(session.accessToken, executionId, short.url);

    expect(await within(socket.ending, 10_000)).toEqual({ reason: 'token_expired', disconnect: 'io server disconnect' });
    expect(await within(stream.ended, 10_000)).toContain('"reason":"token_expired"');
    // Not before the token's exp.
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    await expect(tryConnect(session.accessToken, short.url)).rejects.toThrow(/unauthorized/);
  });

  it('subscribe:agent checks the session again: a session revoked without any notice is refused and disconnected', async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const socket = await connect(member.accessToken);
    // Revoked behind the API's back, so no notice travels: only the check at subscribe can see it.
    await ctx.orm.em.getConnection().execute('update sessions set revoked_at = now() where user_id = ?', [member.userId]);
    const created = await client
      .post('/api/agents')
      .set(as(admin))
      .send({ serverId, name: `late-${Date.now()}` })
      .expect(201);

    expect(await subscribe(socket, created.body.id)).toEqual({ error: { code: 'session_ended', message: expect.any(String) } });
    expect(await within(socket.ending)).toEqual({ reason: 'session_revoked', disconnect: 'io server disconnect' });
  });

  it('every API instance drops the feeds of an ended session, wherever the session ended', async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const here = await connect(member.accessToken);
    const there = await connect(member.accessToken, other.url);
    expect(await subscribe(there)).toEqual({ ok: true });
    const stream = await openStream(member.accessToken, await hangingExecution(), other.url);

    await client.post('/api/auth/logout').send({ refreshToken: member.refreshToken }).expect(204);

    expect(await within(here.ending)).toEqual({ reason: 'logout', disconnect: 'io server disconnect' });
    expect(await within(there.ending)).toEqual({ reason: 'logout', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toContain('"reason":"logout"');
  });

  it('a session that ended while an instance was not listening is found when it listens again', async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const socket = await connect(member.accessToken, other.url);
    const stream = await openStream(member.accessToken, await hangingExecution(), other.url);
    const survivor = await connect((await addMember(client, admin, 'OPERATOR')).accessToken, other.url);
    await ctx.orm.em.getConnection().execute('update sessions set revoked_at = now() where user_id = ?', [member.userId]);

    otherHub.simulateConnectionLoss();

    expect(await within(socket.ending)).toEqual({ reason: 'session_revoked', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toContain('"reason":"session_revoked"');
    expect(survivor.connected).toBe(true);
  });
});
