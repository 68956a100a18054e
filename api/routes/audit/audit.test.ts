import { addMember, httpFor, PASSWORD, randomIp, registerAccount, uniqueEmail, type Account, type Http } from '../../../test/api';
import { createTestContext, type TestContext } from '../../../test/harness';

interface Entry {
  id: string;
  action: string;
  actor: { id: string | null; email: string | null } | null;
  resourceType: string;
  resourceId: string | null;
  changes: Record<string, unknown> | null;
}

describe('audit log', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let manager: Account;
  let operator: Account;
  let viewer: Account;
  let created: string;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Audit Org');
    manager = await addMember(http, admin, 'MANAGER');
    operator = await addMember(http, admin, 'OPERATOR');
    viewer = await addMember(http, admin, 'VIEWER');
    created = (
      await http
        .post('/api/users')
        .auth(admin.accessToken, { type: 'bearer' })
        .send({ email: uniqueEmail(), name: 'Audited', role: 'VIEWER', password: PASSWORD })
        .expect(201)
    ).body.id;
    await http.patch(`/api/users/${created}`).auth(admin.accessToken, { type: 'bearer' }).send({ role: 'OPERATOR' }).expect(200);
    await http
      .post('/api/auth/login')
      .set('X-Forwarded-For', randomIp())
      .send({ email: viewer.email, password: 'wrong password!' })
      .expect(401);
    await http
      .post('/api/auth/logout')
      .send({ refreshToken: (await addMember(http, admin, 'VIEWER')).refreshToken })
      .expect(204);
  });
  afterAll(() => ctx.close());

  const list = (account: Account, query: Record<string, string | number> = {}) =>
    http
      .get('/api/audit')
      .query({ limit: 100, ...query })
      .auth(account.accessToken, { type: 'bearer' });

  it('shows ADMIN and MANAGER every kind of entry of their organisation, newest first', async () => {
    for (const reader of [admin, manager]) {
      const res = await list(reader).expect(200);
      const actions = (res.body.items as Entry[]).map((e) => e.action);
      expect(actions).toEqual(
        expect.arrayContaining(['auth.register', 'auth.login', 'auth.login_failed', 'auth.logout', 'user.create', 'user.update']),
      );
      const times = (res.body.items as { createdAt: string }[]).map((e) => Date.parse(e.createdAt));
      expect([...times].sort((a, b) => b - a)).toEqual(times);
    }
  });

  it.each([['OPERATOR'], ['VIEWER']])('answers 403 to a %s', async (role) => {
    const account = role === 'OPERATOR' ? operator : viewer;
    expect((await list(account).expect(403)).body.error.code).toBe('forbidden');
  });

  it('filters by action (exact or prefix*), actor, resource and time', async () => {
    const updates = (await list(admin, { action: 'user.update' }).expect(200)).body.items as Entry[];
    expect(updates).toHaveLength(1);
    expect(updates[0]).toMatchObject({
      resourceType: 'user',
      resourceId: created,
      changes: { role: { from: 'VIEWER', to: 'OPERATOR' } },
      actor: { id: admin.userId },
    });

    const auth = (await list(admin, { action: 'auth.*' }).expect(200)).body.items as Entry[];
    expect(auth.length).toBeGreaterThanOrEqual(5);
    expect(auth.every((e) => e.action.startsWith('auth.'))).toBe(true);

    const byActor = (await list(admin, { actorId: viewer.userId }).expect(200)).body.items as Entry[];
    expect(byActor.map((e) => e.action).sort()).toEqual(['auth.login', 'auth.login_failed']);

    const byResource = (await list(admin, { resourceType: 'user', resourceId: created }).expect(200)).body.items as Entry[];
    expect(byResource.map((e) => e.action).sort()).toEqual(['user.create', 'user.update']);

    expect((await list(admin, { from: new Date(Date.now() + 60_000).toISOString() }).expect(200)).body.items).toEqual([]);
    const bad = await list(admin, { from: '2026-01-02T00:00:00Z', to: '2026-01-01T00:00:00Z', actorId: 'x' }).expect(400);
    expect(bad.body.error.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(['query.actorId']));
  });

  it('paginates', async () => {
    const first = await list(admin, { limit: 3 }).expect(200);
    expect(first.body.items).toHaveLength(3);
    const second = await list(admin, { limit: 3, cursor: first.body.nextCursor }).expect(200);
    const ids = [...first.body.items, ...second.body.items].map((e: Entry) => e.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('never holds passwords or tokens', async () => {
    const res = await list(admin).expect(200);
    const text = JSON.stringify(res.body);
    expect(text).not.toContain(PASSWORD);
    expect(text).not.toContain(admin.refreshToken);
    expect(text).not.toContain(admin.accessToken);
  });

  it("answers 404 for another organisation's entries and never lists them", async () => {
    const other = await registerAccount(http, 'Other Audit Org');
    const theirs = ((await list(other).expect(200)).body.items as Entry[])[0]!;
    expect((await http.get(`/api/audit/${theirs.id}`).auth(admin.accessToken, { type: 'bearer' }).expect(404)).body.error.code).toBe(
      'not_found',
    );
    await http.get(`/api/audit/${theirs.id}`).auth(other.accessToken, { type: 'bearer' }).expect(200);
    const mine = (await list(admin).expect(200)).body.items as Entry[];
    expect(mine.map((e) => e.id)).not.toContain(theirs.id);
    expect((await list(admin, { actorId: other.userId }).expect(200)).body.items).toEqual([]);
  });
});
