import { randomUUID } from 'node:crypto';
import { ApiKey, AuditLog } from '../../../entities';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { createTestContext, type TestContext } from '../../../test/harness';
import { waitFor } from '../../../test/fleet';

interface CreatedKey {
  id: string;
  name: string;
  role: string;
  prefix: string;
  owner: { id: string; email: string };
  key: string;
  expiresAt: string | null;
}

describe('API keys', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'API Keys Org');
  });
  afterAll(async () => {
    await ctx?.close();
  });

  const as = (account: Pick<Account, 'accessToken'>) => ({ Authorization: `Bearer ${account.accessToken}` });
  const withKey = (key: string) => ({ Authorization: `Bearer ${key}` });

  async function createKey(account: Account, body: Record<string, unknown> = {}): Promise<CreatedKey> {
    const res = await http
      .post('/api/api-keys')
      .set(as(account))
      .send({ name: `key ${randomUUID().slice(0, 6)}`, ...body });
    expect(res.status).toBe(201);
    return res.body as CreatedKey;
  }

  it('shows the key once, lists it without the key, keeps only a hash at rest, and revokes it', async () => {
    const created = await createKey(admin, { name: 'CI deploy' });
    expect(created.key).toMatch(/^mcpf_[0-9a-f]{32}_[A-Za-z0-9_-]{43}$/);
    expect(created.key.startsWith(created.prefix)).toBe(true);
    expect(created).toMatchObject({ name: 'CI deploy', role: 'ADMIN', owner: { id: admin.userId, email: admin.email }, expiresAt: null });

    const listed = await http.get('/api/api-keys').set(as(admin)).expect(200);
    const item = listed.body.items.find((k: { id: string }) => k.id === created.id);
    expect(item).toMatchObject({ prefix: created.prefix, name: 'CI deploy', role: 'ADMIN', lastUsedAt: null, revokedAt: null });
    expect(item).not.toHaveProperty('key');
    const secretPart = created.key.slice(-43);
    expect(JSON.stringify(listed.body)).not.toContain(secretPart);

    // At rest: the row has no trace of the key, only a 64-hex keyed hash.
    const rows = await ctx.orm.em.getConnection().execute<Record<string, unknown>[]>('select * from api_keys where id = ?', [created.id]);
    expect(JSON.stringify(rows[0])).not.toContain(secretPart);
    expect(rows[0]!.secret_hash).toMatch(/^[0-9a-f]{64}$/);

    // The key works as a bearer token, and the use is noted.
    const me = await http.get('/api/auth/me').set(withKey(created.key)).expect(200);
    expect(me.body.user.id).toBe(admin.userId);
    const used = await ctx.orm.em.fork().findOneOrFail(ApiKey, created.id);
    expect(used.lastUsedAt).toBeInstanceOf(Date);

    await http.delete(`/api/api-keys/${created.id}`).set(as(admin)).expect(204);
    const refused = await http.get('/api/agents').set(withKey(created.key)).expect(401);
    expect(refused.body.error.code).toBe('api_key_revoked');
    expect(refused.headers['www-authenticate']).toBe('Bearer');
    const after = await http.get('/api/api-keys').set(as(admin)).expect(200);
    expect(after.body.items.find((k: { id: string }) => k.id === created.id).revokedAt).toEqual(expect.any(String));
  });

  it('refuses a wrong or malformed key as invalid_api_key, never as a JWT problem', async () => {
    const created = await createKey(admin);
    const forged = created.key.slice(0, -43) + 'A'.repeat(43);
    for (const key of [forged, 'mcpf_nothing', `mcpf_${randomUUID().replace(/-/g, '')}_${'B'.repeat(43)}`]) {
      const res = await http.get('/api/agents').set(withKey(key)).expect(401);
      expect(res.body.error.code).toBe('invalid_api_key');
    }
  });

  it("caps a key's role at its creator's: default the creator's role, above it 403 with the field", async () => {
    const operator = await addMember(http, admin, 'OPERATOR');
    expect((await createKey(operator)).role).toBe('OPERATOR');
    expect((await createKey(operator, { role: 'VIEWER' })).role).toBe('VIEWER');
    const tooHigh = await http.post('/api/api-keys').set(as(operator)).send({ name: 'x', role: 'MANAGER' }).expect(403);
    expect(tooHigh.body.error).toMatchObject({ code: 'role_too_high', details: [{ path: 'body.role', code: 'role_too_high' }] });
    const bad = await http.post('/api/api-keys').set(as(operator)).send({ name: '', role: 'ROOT', secret: 'x' }).expect(400);
    expect(bad.body.error.details.map((d: { path: string }) => d.path).sort()).toEqual(['body', 'body.name', 'body.role']);
    const past = await http.post('/api/api-keys').set(as(operator)).send({ name: 'old', expiresAt: '2020-01-01T00:00:00Z' }).expect(400);
    expect(past.body.error.details).toEqual([expect.objectContaining({ path: 'body.expiresAt' })]);
  });

  it('a key cannot create keys', async () => {
    const created = await createKey(admin);
    const res = await http.post('/api/api-keys').set(withKey(created.key)).send({ name: 'child' }).expect(403);
    expect(res.body.error.code).toBe('api_key_not_allowed');
  });

  it('an expired key is refused with api_key_expired', async () => {
    const created = await createKey(admin, { expiresAt: new Date(Date.now() + 60_000).toISOString() });
    await http.get('/api/agents').set(withKey(created.key)).expect(200);
    await ctx.orm.em.getConnection().execute("update api_keys set expires_at = now() - interval '1 second' where id = ?", [created.id]);
    const res = await http.get('/api/agents').set(withKey(created.key)).expect(401);
    expect(res.body.error.code).toBe('api_key_expired');
  });

  it("a member lists and revokes only their own keys; an ADMIN sees and revokes everyone's", async () => {
    const viewer = await addMember(http, admin, 'VIEWER');
    const other = await addMember(http, admin, 'OPERATOR');
    const own = await createKey(viewer);
    const theirs = await createKey(other);
    const adminsOwn = await createKey(admin);

    const mine = await http.get('/api/api-keys?limit=100').set(as(viewer)).expect(200);
    expect(mine.body.items.map((k: { id: string }) => k.id)).toEqual([own.id]);
    await http.delete(`/api/api-keys/${theirs.id}`).set(as(viewer)).expect(403);
    await http.delete(`/api/api-keys/${adminsOwn.id}`).set(withKey(own.key)).expect(403);

    const all = await http.get('/api/api-keys?limit=100').set(as(admin)).expect(200);
    expect(all.body.items.map((k: { id: string }) => k.id)).toEqual(expect.arrayContaining([own.id, theirs.id, adminsOwn.id]));
    // Paginated like the other lists.
    const first = await http.get('/api/api-keys?limit=1').set(as(admin)).expect(200);
    expect(first.body.items).toHaveLength(1);
    const second = await http.get(`/api/api-keys?limit=1&cursor=${first.body.nextCursor}`).set(as(admin)).expect(200);
    expect(second.body.items[0].id).not.toBe(first.body.items[0].id);

    await http.delete(`/api/api-keys/${theirs.id}`).set(as(admin)).expect(204);
    expect((await http.get('/api/agents').set(withKey(theirs.key)).expect(401)).body.error.code).toBe('api_key_revoked');
    // The owner revokes their own, with the key itself too.
    await http.delete(`/api/api-keys/${own.id}`).set(withKey(own.key)).expect(204);
  });

  it("a deleted owner's keys are refused", async () => {
    const member = await addMember(http, admin, 'OPERATOR');
    const created = await createKey(member);
    await http.get('/api/agents').set(withKey(created.key)).expect(200);
    await http.delete(`/api/users/${member.userId}`).set(as(admin)).expect(204);
    expect((await http.get('/api/agents').set(withKey(created.key)).expect(401)).body.error.code).toBe('invalid_api_key');
  });

  it("a demoted owner's key shrinks with them", async () => {
    const manager = await addMember(http, admin, 'MANAGER');
    const created = await createKey(manager);
    // A MANAGER reads the audit log; a VIEWER does not.
    await http.get('/api/audit').set(withKey(created.key)).expect(200);
    await http.patch(`/api/users/${manager.userId}`).set(as(admin)).send({ role: 'VIEWER' }).expect(200);
    await http.get('/api/audit').set(withKey(created.key)).expect(403);
    const me = await http.get('/api/auth/me').set(withKey(created.key)).expect(200);
    expect(me.body.user.role).toBe('VIEWER');
  });

  it('the audit log names the key and its owner as the actor', async () => {
    const created = await createKey(admin, { name: 'audited' });
    const member = await http
      .post('/api/users')
      .set(withKey(created.key))
      .send({
        email: `k-${randomUUID().slice(0, 8)}@example.test`,
        name: 'By key',
        role: 'VIEWER',
        password: 'correct horse battery staple',
      })
      .expect(201);
    const entries = await http.get(`/api/audit?action=user.create&resourceId=${member.body.id}`).set(as(admin)).expect(200);
    expect(entries.body.items[0].actor).toEqual({
      id: admin.userId,
      email: admin.email,
      apiKey: { id: created.id, name: 'audited', prefix: created.prefix },
    });
    const revoked = await http.delete(`/api/api-keys/${created.id}`).set(as(admin)).expect(204);
    expect(revoked.status).toBe(204);
    const revocation = await ctx.orm.em.fork().findOneOrFail(AuditLog, { action: 'api_key.revoke', resourceId: created.id });
    expect(revocation.changes).toMatchObject({ name: 'audited', prefix: created.prefix });
    expect(JSON.stringify(revocation)).not.toContain(created.key.slice(-43));
  });

  it('concurrent revocations of one key record one revocation', async () => {
    const created = await createKey(admin);
    // The row is held (by a plain knex transaction: a MikroORM one would be joined by the
    // in-process requests) while two revocations start, so both have read it before either writes.
    const holder = await ctx.orm.em.getConnection().getKnex().transaction();
    try {
      const pid = ((await holder.raw('select pg_backend_pid() as pid')) as { rows: { pid: number }[] }).rows[0]!.pid;
      await holder.raw('select id from api_keys where id = ? for update', [created.id]);
      const deletes = Promise.all(
        [1, 2].map(() =>
          http
            .delete(`/api/api-keys/${created.id}`)
            .set(as(admin))
            .then((r) => r.status),
        ),
      );
      await waitFor(async () => {
        const [row] = await ctx.orm.em.getConnection().execute<{ n: number }[]>(
          // Waiting on the holder, or on a waiter queued before them (the second revocation waits on the first).
          `select count(*)::int as n from pg_stat_activity a where ?::int = any(pg_blocking_pids(a.pid)) or exists
               (select 1 from pg_stat_activity b where ?::int = any(pg_blocking_pids(b.pid)) and b.pid = any(pg_blocking_pids(a.pid)))`,
          [pid, pid],
        );
        return row!.n >= 2;
      });
      await holder.commit();
      expect(await deletes).toEqual([204, 204]);
    } finally {
      if (!holder.isCompleted()) await holder.rollback();
    }
    expect(await ctx.orm.em.fork().count(AuditLog, { action: 'api_key.revoke', resourceId: created.id })).toBe(1);
  });

  it("another organisation's key ids are not found, and their keys never listed", async () => {
    const otherAdmin = await registerAccount(http, 'Other Keys Org');
    const foreign = await createKey(otherAdmin);
    await http.delete(`/api/api-keys/${foreign.id}`).set(as(admin)).expect(404);
    const listed = await http.get('/api/api-keys?limit=100').set(as(admin)).expect(200);
    expect(listed.body.items.map((k: { id: string }) => k.id)).not.toContain(foreign.id);
    // And the key itself reaches only its own organisation.
    const me = await http.get('/api/auth/me').set(withKey(foreign.key)).expect(200);
    expect(me.body.organization.id).toBe(otherAdmin.organizationId);
  });
});
