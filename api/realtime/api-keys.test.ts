import type request from 'supertest';
import { addMember, type Account } from '../../test/api';
import { useTwoInstances, within } from '../../test/feeds';
import type { ApiServer } from '../server';

/**
 * API keys on the live feeds and on the routes that run agents: a key opens sockets and SSE
 * streams like an access token, and its revocation closes them at once on every API instance.
 */
describe('API keys on sockets, streams and runs', () => {
  const feeds = useTwoInstances('API Key Feeds Org');
  const { tryConnect, connect, subscribe, hangingExecution, openStream } = feeds;
  let other: ApiServer, client: ReturnType<typeof request>, admin: Account, agentId: string;
  beforeAll(() => ({ other, client, admin, agentId } = feeds));

  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  async function createKey(account: Account, body: Record<string, unknown> = {}): Promise<{ id: string; key: string }> {
    const res = await client
      .post('/api/api-keys')
      .set(bearer(account.accessToken))
      .send({ name: 'feeds', ...body })
      .expect(201);
    return res.body as { id: string; key: string };
  }

  it('revoking a key closes its sockets and SSE streams on every API instance, and only those', async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const revoked = await createKey(member);
    const kept = await createKey(member);
    const here = await connect(revoked.key);
    const there = await connect(revoked.key, other.url);
    expect(await subscribe(here)).toEqual({ ok: true });
    expect(await subscribe(there)).toEqual({ ok: true });
    const stream = await openStream(revoked.key, await hangingExecution(), other.url);
    const otherKey = await connect(kept.key, other.url);
    const login = await connect(member.accessToken);

    // Revoked through the first instance; the second hears of it through PostgreSQL.
    await client.delete(`/api/api-keys/${revoked.id}`).set(bearer(member.accessToken)).expect(204);

    expect(await within(here.ending)).toEqual({ reason: 'api_key_revoked', disconnect: 'io server disconnect' });
    expect(await within(there.ending)).toEqual({ reason: 'api_key_revoked', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toMatch(/event: session_ended\ndata: {"reason":"api_key_revoked"}\n\n$/);
    await expect(tryConnect({ token: revoked.key })).rejects.toThrow(/unauthorized: api_key_revoked/);
    // The owner's other key and login go on.
    expect(await subscribe(otherKey)).toEqual({ ok: true });
    expect(await subscribe(login)).toEqual({ ok: true });
  });

  it('a key reaching its expiresAt ends its socket and SSE stream, not before', async () => {
    const executionId = await hangingExecution();
    // Long enough to open both feeds on a loaded machine first.
    const expiresAt = Date.now() + 8000;
    const { key } = await createKey(admin, { expiresAt: new Date(expiresAt).toISOString() });
    const socket = await connect(key);
    const stream = await openStream(key, executionId);

    expect(await within(socket.ending)).toEqual({ reason: 'token_expired', disconnect: 'io server disconnect' });
    expect(await within(stream.ended)).toContain('"reason":"token_expired"');
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt);
    await expect(tryConnect({ token: key })).rejects.toThrow(/unauthorized: api_key_expired/);
  });

  it('a key is accepted as Authorization: Bearer on the Socket.IO handshake too', async () => {
    const { key } = await createKey(admin);
    const socket = await tryConnect({ header: key });
    expect(await subscribe(socket)).toEqual({ ok: true });
  });

  it("a role change of the owner ends the key's feeds, which reopen with the lower role", async () => {
    const member = await addMember(client, admin, 'OPERATOR');
    const { key } = await createKey(member);
    const socket = await connect(key);
    await client.patch(`/api/users/${member.userId}`).set(bearer(admin.accessToken)).send({ role: 'VIEWER' }).expect(200);
    expect(await within(socket.ending)).toEqual({ reason: 'role_changed', disconnect: 'io server disconnect' });
    // Reconnects, now able to read (VIEWER) but not to run.
    expect(await subscribe(await connect(key))).toEqual({ ok: true });
    await client.post(`/api/agents/${agentId}/execute`).set(bearer(key)).send({ prompt: 'demoted' }).expect(403);
  });

  it('a VIEWER key reads agents and runs but cannot start a run; an OPERATOR key can', async () => {
    const operator = await addMember(client, admin, 'OPERATOR');
    const viewerKey = await createKey(operator, { role: 'VIEWER' });
    const operatorKey = await createKey(operator);

    await client.get(`/api/agents/${agentId}`).set(bearer(viewerKey.key)).expect(200);
    await client.get('/api/executions').set(bearer(viewerKey.key)).expect(200);
    const refused = await client.post(`/api/agents/${agentId}/execute`).set(bearer(viewerKey.key)).send({ prompt: 'no' }).expect(403);
    expect(refused.body.error.code).toBe('forbidden');

    const started = await client.post(`/api/agents/${agentId}/execute`).set(bearer(operatorKey.key)).send({ prompt: 'by key' }).expect(202);
    const audit = await client
      .get(`/api/audit?action=agent.execute&resourceId=${started.body.executionId}`)
      .set(bearer(admin.accessToken))
      .expect(200);
    expect(audit.body.items[0].actor).toMatchObject({ id: operator.userId, apiKey: { id: operatorKey.id } });
  });
});
