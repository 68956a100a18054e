import { Client } from 'pg';
import { AuditLog, User, UserRole } from '../../../entities';
import { addMember, httpFor, PASSWORD, randomIp, registerAccount, uniqueEmail, type Account, type Http } from '../../../test/api';
import { waitFor } from '../../../test/fleet';
import { createTestContext, type TestContext } from '../../../test/harness';

describe('users (ADMIN only, own organisation only)', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let members: Record<'MANAGER' | 'OPERATOR' | 'VIEWER', Account>;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Users Org');
    members = {
      MANAGER: await addMember(http, admin, 'MANAGER'),
      OPERATOR: await addMember(http, admin, 'OPERATOR'),
      VIEWER: await addMember(http, admin, 'VIEWER'),
    };
  });
  afterAll(() => ctx.close());

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  it('lets an ADMIN create, list, update and delete users, auditing each change', async () => {
    const email = uniqueEmail('new');
    const created = await http
      .post('/api/users')
      .set(as(admin))
      .send({ email, name: 'New One', role: 'VIEWER', password: PASSWORD })
      .expect(201);
    expect(created.body).toMatchObject({ email, name: 'New One', role: 'VIEWER', organizationId: admin.organizationId });
    expect(JSON.stringify(created.body)).not.toMatch(/password/i);

    const patched = await http
      .patch(`/api/users/${created.body.id}`)
      .set(as(admin))
      .send({ role: 'OPERATOR', name: 'Renamed' })
      .expect(200);
    expect(patched.body).toMatchObject({ role: 'OPERATOR', name: 'Renamed' });

    await http.delete(`/api/users/${created.body.id}`).set(as(admin)).expect(204);
    await http.get(`/api/users/${created.body.id}`).set(as(admin)).expect(404);

    const audit = await ctx.orm.em
      .fork()
      .find(AuditLog, { organization: admin.organizationId, resourceId: created.body.id }, { orderBy: { createdAt: 'asc' } });
    expect(audit.map((a) => a.action)).toEqual(['user.create', 'user.update', 'user.delete']);
    expect(audit[1]!.changes).toEqual({ role: { from: 'VIEWER', to: 'OPERATOR' }, name: { from: 'New One', to: 'Renamed' } });
    expect(audit.every((a) => a.actor?.id === admin.userId && !JSON.stringify(a.changes).includes(PASSWORD))).toBe(true);
  });

  it('refuses a duplicate email with 409 email_taken', async () => {
    const res = await http
      .post('/api/users')
      .set(as(admin))
      .send({ email: members.VIEWER.email, name: 'Dup', role: 'VIEWER', password: PASSWORD })
      .expect(409);
    expect(res.body.error.code).toBe('email_taken');
  });

  it.each(['MANAGER', 'OPERATOR', 'VIEWER'] as const)('answers 403 to a %s on every user route but reading itself', async (role) => {
    const member = members[role];
    const target = members.VIEWER.userId === member.userId ? members.OPERATOR.userId : members.VIEWER.userId;
    expect((await http.get('/api/users').set(as(member)).expect(403)).body.error.code).toBe('forbidden');
    await http.post('/api/users').set(as(member)).send({ email: uniqueEmail(), name: 'x', role: 'ADMIN', password: PASSWORD }).expect(403);
    await http.patch(`/api/users/${target}`).set(as(member)).send({ role: 'ADMIN' }).expect(403);
    await http.patch(`/api/users/${member.userId}`).set(as(member)).send({ role: 'ADMIN' }).expect(403);
    await http.delete(`/api/users/${target}`).set(as(member)).expect(403);
    await http.get(`/api/users/${target}`).set(as(member)).expect(403);
    await http.get(`/api/users/${member.userId}`).set(as(member)).expect(200);
  });

  it('applies a role change on the very next request (the role is read with the session)', async () => {
    const member = await addMember(http, admin, 'VIEWER');
    await http.get('/api/users').set(as(member)).expect(403);
    await http.patch(`/api/users/${member.userId}`).set(as(admin)).send({ role: 'ADMIN' }).expect(200);
    await http.get('/api/users').set(as(member)).expect(200);
    await http.patch(`/api/users/${member.userId}`).set(as(admin)).send({ role: 'VIEWER' }).expect(200);
    await http.get('/api/users').set(as(member)).expect(403);
  });

  it('never lets an organisation lose its last ADMIN (409), but allows it when another ADMIN remains', async () => {
    const solo = await registerAccount(http, 'Solo Org');
    expect((await http.patch(`/api/users/${solo.userId}`).set(as(solo)).send({ role: 'VIEWER' }).expect(409)).body.error.code).toBe(
      'last_admin',
    );
    expect((await http.delete(`/api/users/${solo.userId}`).set(as(solo)).expect(409)).body.error.code).toBe('last_admin');

    const second = await addMember(http, solo, 'ADMIN');
    await http.patch(`/api/users/${solo.userId}`).set(as(second)).send({ role: 'MANAGER' }).expect(200);
    expect((await http.delete(`/api/users/${second.userId}`).set(as(second)).expect(409)).body.error.code).toBe('last_admin');
  });

  it('keeps one ADMIN when two ADMINs remove or demote each other at the same time (several rounds)', async () => {
    const adminCount = async (organizationId: string) =>
      ctx.orm.em.fork().count(User, { organization: organizationId, role: UserRole.ADMIN });
    for (let round = 0; round < 6; round++) {
      const org = await registerAccount(http, `Race Org ${round}`);
      const other = await addMember(http, org, 'ADMIN');
      const [a, b] = [org, other];
      // Each round mixes the two ways of losing an ADMIN: a delete and a demotion.
      const attempts =
        round % 3 === 0
          ? [http.delete(`/api/users/${b.userId}`).set(as(a)), http.delete(`/api/users/${a.userId}`).set(as(b))]
          : round % 3 === 1
            ? [
                http.patch(`/api/users/${b.userId}`).set(as(a)).send({ role: 'VIEWER' }),
                http.patch(`/api/users/${a.userId}`).set(as(b)).send({ role: 'VIEWER' }),
              ]
            : [http.delete(`/api/users/${b.userId}`).set(as(a)), http.patch(`/api/users/${a.userId}`).set(as(b)).send({ role: 'VIEWER' })];
      const results = await Promise.all(attempts);
      expect([round, await adminCount(org.organizationId)]).toEqual([round, 1]);
      // The loser is refused: 409 last_admin, or 401/403 when it was authenticated after the
      // winner had already deleted or demoted it. Never a 500 (a deadlock, for one).
      for (const r of results) expect([200, 204, 401, 403, 409]).toContain(r.status);
    }
  });

  it.each([
    ['deleting', (http: Http, by: Account, target: string) => http.delete(`/api/users/${target}`).set(as(by))],
    ['demoting', (http: Http, by: Account, target: string) => http.patch(`/api/users/${target}`).set(as(by)).send({ role: 'MANAGER' })],
  ])('decides on the role the target has when %s it commits, not on one read before a concurrent change', async (_label, change) => {
    const org = await registerAccount(http, 'Handover Org');
    const heir = await addMember(http, org, 'VIEWER');
    // Another writer hands the ADMIN role from org to heir in one transaction and holds it open
    // while the request runs: the same interleaving as a promotion and a demotion that commit
    // between the request's read of the target and its write.
    const handover = new Client({ connectionString: ctx.config.database.url });
    await handover.connect();
    try {
      await handover.query('begin');
      await handover.query("update users set role = 'ADMIN' where id = $1", [heir.userId]);
      await handover.query("update users set role = 'VIEWER' where id = $1", [org.userId]);
      const pending = change(http, org, heir.userId).then((r) => r);
      const { rows } = await handover.query<{ pid: number }>('select pg_backend_pid() as pid');
      await waitFor(async () => {
        const blocked = await ctx.orm.em
          .getConnection()
          .execute<{ n: number }[]>('select count(*)::int as n from pg_stat_activity where ? = any(pg_blocking_pids(pid))', [rows[0]!.pid]);
        return blocked[0]!.n > 0;
      });
      await handover.query('commit');
      const res = await pending;
      expect([res.status, res.body.error?.code]).toEqual([409, 'last_admin']);
    } finally {
      await handover.end();
    }
    expect(await ctx.orm.em.fork().count(User, { organization: org.organizationId, role: UserRole.ADMIN })).toBe(1);
  });

  it('ends the sessions of a deleted user', async () => {
    const member = await addMember(http, admin, 'OPERATOR');
    await http.get('/api/auth/me').set(as(member)).expect(200);
    await http.delete(`/api/users/${member.userId}`).set(as(admin)).expect(204);
    expect((await http.get('/api/auth/me').set(as(member)).expect(401)).body.error.code).toBe('token_revoked');
    await http.post('/api/auth/refresh').send({ refreshToken: member.refreshToken }).expect(401);
    await http.post('/api/auth/login').set('X-Forwarded-For', randomIp()).send({ email: member.email, password: PASSWORD }).expect(401);
  });

  it('paginates with limit and cursor, and filters by role and text', async () => {
    const org = await registerAccount(http, 'Paged Org');
    for (let i = 0; i < 4; i++) await addMember(http, org, 'VIEWER');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { body: { items: { id: string }[]; nextCursor: string | null } } = await http
        .get('/api/users')
        .query({ limit: 2, ...(cursor ? { cursor } : {}) })
        .set(as(org))
        .expect(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((u) => u.id));
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(seen).toHaveLength(5);
    expect(new Set(seen).size).toBe(5);

    const viewers = await http.get('/api/users').query({ role: 'VIEWER' }).set(as(org)).expect(200);
    expect(viewers.body.items).toHaveLength(4);
    const byText = await http
      .get('/api/users')
      .query({ q: org.email.slice(0, 14).toUpperCase() })
      .set(as(org))
      .expect(200);
    expect(byText.body.items.map((u: { id: string }) => u.id)).toEqual([org.userId]);

    const bad = await http.get('/api/users').query({ limit: 1000, cursor: 'garbage', extra: 1 }).set(as(org)).expect(400);
    expect(bad.body.error.details.map((d: { path: string }) => d.path)).toEqual(
      expect.arrayContaining(['query.limit', 'query.cursor', 'query']),
    );
  });

  describe('cross-tenant', () => {
    it("answers 404 to every read, update and delete of another organisation's users, and never lists them", async () => {
      const other = await registerAccount(http, 'Other Org');
      const victim = await addMember(http, other, 'VIEWER');
      for (const target of [other.userId, victim.userId]) {
        expect((await http.get(`/api/users/${target}`).set(as(admin)).expect(404)).body.error.code).toBe('not_found');
        await http.patch(`/api/users/${target}`).set(as(admin)).send({ role: 'ADMIN' }).expect(404);
        await http.delete(`/api/users/${target}`).set(as(admin)).expect(404);
      }
      const list = await http.get('/api/users').query({ limit: 100 }).set(as(admin)).expect(200);
      expect(list.body.items.every((u: { organizationId: string }) => u.organizationId === admin.organizationId)).toBe(true);
      const victimNow = await http.get(`/api/users/${victim.userId}`).set(as(other)).expect(200);
      expect(victimNow.body.role).toBe('VIEWER');
    });
  });

  it('validates ids and bodies', async () => {
    expect((await http.patch('/api/users/not-a-uuid').set(as(admin)).send({ role: 'ADMIN' }).expect(400)).body.error.details[0].path).toBe(
      'params.id',
    );
    expect((await http.patch(`/api/users/${members.VIEWER.userId}`).set(as(admin)).send({}).expect(400)).body.error.code).toBe(
      'validation_failed',
    );
    expect(
      (await http.patch(`/api/users/${members.VIEWER.userId}`).set(as(admin)).send({ role: 'ROOT' }).expect(400)).body.error.details[0]
        .path,
    ).toBe('body.role');
  });
});
