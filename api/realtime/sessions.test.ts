import request from 'supertest';
import { addMember, PASSWORD, randomIp, type Account } from '../../test/api';
import { useTwoInstances, within } from '../../test/feeds';
import { waitFor } from '../../test/fleet';
import type { TestContext } from '../../test/harness';
import { startApiServer, type ApiServer } from '../server';
import type { RealtimeHub } from './hub';

/**
 * Open sockets and SSE streams end with their session: logout, refresh-token reuse, a deleted
 * user, a role change and an expired access token each reach them at once, on every API instance.
 */
describe('realtime feeds end with their session', () => {
  const feeds = useTwoInstances('Session Feeds Org');
  const { closers, tryConnect, connect, subscribe, hangingExecution, openStream } = feeds;
  let otherHub: RealtimeHub,
    ctx: TestContext,
    other: ApiServer,
    client: ReturnType<typeof request>,
    admin: Account,
    serverId: string,
    agentId: string;
  beforeAll(() => ({ otherHub, ctx, other, client, admin, serverId, agentId } = feeds));

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
    await expect(tryConnect({ token: member.accessToken })).rejects.toThrow(/unauthorized/);

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
    await expect(tryConnect({ token: session.accessToken }, short.url)).rejects.toThrow(/unauthorized/);
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
