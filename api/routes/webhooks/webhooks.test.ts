import { randomBytes, randomUUID } from 'node:crypto';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import { AuditLog, Webhook } from '../../../entities';
import { signingSecrets } from '../../../domain/webhooks/webhook-commands';
import { signWebhook } from '../../../domain/webhooks/signing';
import { rotateWebhookSecrets } from '../../../domain/webhooks/key-rotation';
import { addMember, httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { createTestContext, type TestContext } from '../../../test/harness';

describe('webhook endpoints', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Webhooks Org');
  });
  afterAll(async () => {
    await ctx?.close();
  });

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });
  const URL_OK = 'http://127.0.0.1:9/hooks';

  async function register(account: Account = admin, body: Record<string, unknown> = {}) {
    const res = await http
      .post('/api/webhooks')
      .set(as(account))
      .send({ url: URL_OK, events: ['execution.failed'], ...body });
    expect(res.status).toBe(201);
    return res.body as { id: string; url: string; events: string[]; enabled: boolean; secret: string };
  }

  async function storedSecrets(id: string, now?: Date): Promise<string[]> {
    const em = ctx.orm.em.fork();
    return signingSecrets(em, ctx.config, await em.findOneOrFail(Webhook, id), now);
  }

  it('answers the signing secret once, on creation, and keeps it sealed at rest', async () => {
    const created = await register(admin, { events: ['execution.failed', 'server.offline', 'execution.failed'], description: 'pager' });
    expect(created.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(created.events).toEqual(['execution.failed', 'server.offline']);
    expect(created.enabled).toBe(true);

    const read = await http.get(`/api/webhooks/${created.id}`).set(as(admin)).expect(200);
    expect(read.body).not.toHaveProperty('secret');
    expect(JSON.stringify(read.body)).not.toContain(created.secret.slice(6));
    const list = await http.get('/api/webhooks').set(as(admin)).expect(200);
    expect(list.body.items.map((w: { id: string }) => w.id)).toContain(created.id);
    expect(JSON.stringify(list.body)).not.toContain(created.secret.slice(6));

    const [row] = (await ctx.orm.em
      .getConnection()
      .execute('select secret_ciphertext, secret_key_id from webhooks where id = ?', [created.id])) as {
      secret_ciphertext: string;
      secret_key_id: string;
    }[];
    expect(row!.secret_ciphertext).not.toContain(created.secret.slice(6));
    expect(row!.secret_key_id).toBe(ctx.config.encryptionKeys[0]!.id);
    expect(await storedSecrets(created.id)).toEqual([created.secret]);

    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: created.id, action: 'webhook.create' });
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit[0]!.changes)).not.toContain(created.secret.slice(6));
  });

  it('signs per Standard Webhooks, so the standardwebhooks package verifies with the secret it was given', async () => {
    const created = await register();
    const body = JSON.stringify({ type: 'webhook.test', timestamp: new Date().toISOString(), data: { webhookId: created.id } });
    const id = `msg_${randomUUID()}`;
    const headers = signWebhook(await storedSecrets(created.id), id, new Date(), body);
    expect(new StandardWebhook(created.secret).verify(body, { ...headers })).toEqual(JSON.parse(body));
    // A changed body or another secret does not verify.
    expect(() => new StandardWebhook(created.secret).verify(body.replace('test', 'tost'), { ...headers })).toThrow();
    const other = await register();
    expect(() => new StandardWebhook(other.secret).verify(body, { ...headers })).toThrow();
  });

  it('rotates the secret: the old one keeps signing beside the new one for 24 h, then only the new one', async () => {
    const created = await register();
    const res = await http.post(`/api/webhooks/${created.id}/rotate-secret`).set(as(admin)).expect(200);
    const rotated = res.body as { secret: string; previousSecretExpiresAt: string };
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(created.secret);
    const expiresIn = Date.parse(rotated.previousSecretExpiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(23 * 3600_000);
    expect(expiresIn).toBeLessThanOrEqual(24 * 3600_000);

    const body = '{"type":"webhook.test"}';
    const now = new Date();
    const headers = signWebhook(await storedSecrets(created.id, now), 'msg_rotation', now, body);
    expect(headers['webhook-signature'].split(' ')).toHaveLength(2);
    for (const secret of [created.secret, rotated.secret]) expect(new StandardWebhook(secret).verify(body, { ...headers })).toBeTruthy();

    const dayLater = new Date(now.getTime() + 24 * 3600_000 + 1000);
    expect(await storedSecrets(created.id, dayLater)).toEqual([rotated.secret]);

    // A second rotation keeps only the secret in use just before it.
    const again = (await http.post(`/api/webhooks/${created.id}/rotate-secret`).set(as(admin)).expect(200)).body as { secret: string };
    expect(await storedSecrets(created.id)).toEqual([again.secret, rotated.secret]);
    const audit = await ctx.orm.em.fork().find(AuditLog, { resourceId: created.id, action: 'webhook.rotate_secret' });
    expect(audit).toHaveLength(2);
    expect(JSON.stringify(audit.map((a) => a.changes))).not.toMatch(/whsec_|[A-Za-z0-9+/]{43}=/);
  });

  it('re-encrypts the current and the previous secret under a new key (npm run keys:rotate); the old key can then go', async () => {
    const created = await register();
    const rotated = (await http.post(`/api/webhooks/${created.id}/rotate-secret`).set(as(admin)).expect(200)).body as { secret: string };
    const newKey = { id: `k${randomBytes(3).toString('hex')}`, key: randomBytes(32) };
    // Scoped to this organisation: other test files share the database and keep the old ring.
    const report = await rotateWebhookSecrets(ctx.orm, [newKey, ...ctx.config.encryptionKeys], { organizationId: admin.organizationId });
    expect(report.failed).toEqual([]);
    expect(report.rotated).toBeGreaterThanOrEqual(1);
    const em = ctx.orm.em.fork();
    const row = await em.findOneOrFail(Webhook, created.id);
    expect(row.secretKeyId).toBe(newKey.id);
    expect(row.previousSecretKeyId).toBe(newKey.id);
    expect(await signingSecrets(em, { encryptionKeys: [newKey] }, row)).toEqual([rotated.secret, created.secret]);
  });

  it('changes and removes an endpoint, audited', async () => {
    const created = await register();
    const res = await http
      .put(`/api/webhooks/${created.id}`)
      .set(as(admin))
      .send({ events: ['tool.drift'], enabled: false, description: 'muted' })
      .expect(200);
    expect(res.body).toMatchObject({ events: ['tool.drift'], enabled: false, description: 'muted' });
    const cleared = await http.put(`/api/webhooks/${created.id}`).set(as(admin)).send({ description: null }).expect(200);
    expect(cleared.body.description).toBeNull();
    await http.delete(`/api/webhooks/${created.id}`).set(as(admin)).expect(204);
    await http.get(`/api/webhooks/${created.id}`).set(as(admin)).expect(404);
    const actions = (await ctx.orm.em.fork().find(AuditLog, { resourceId: created.id }, { orderBy: { createdAt: 'asc' } })).map(
      (a) => a.action,
    );
    expect(actions).toEqual(['webhook.create', 'webhook.update', 'webhook.update', 'webhook.delete']);
  });

  it.each([
    ['a cloud metadata address', { url: 'http://169.254.169.254/latest' }, 'body.url'],
    ['a scheme other than http(s)', { url: 'ftp://hooks.example.com/x' }, 'body.url'],
    ['credentials in the URL', { url: 'https://user:pw@hooks.example.com/x' }, 'body.url'],
    ['an unknown event type', { events: ['execution.failed', 'execution.exploded'] }, 'body.events.1'],
    ['no event type', { events: [] }, 'body.events'],
    ['an unknown field', { secret: 'whsec_mine' }, 'body'],
  ])('refuses %s with a 400 on the field', async (_label, override, path) => {
    const res = await http
      .post('/api/webhooks')
      .set(as(admin))
      .send({ url: URL_OK, events: ['execution.failed'], ...override });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details.map((d: { path: string }) => d.path)).toContain(path);
  });

  it('refuses a metadata URL on update too, and an empty update', async () => {
    const created = await register();
    const res = await http.put(`/api/webhooks/${created.id}`).set(as(admin)).send({ url: 'http://169.254.169.254/' }).expect(400);
    expect(res.body.error.details[0].path).toBe('body.url');
    await http.put(`/api/webhooks/${created.id}`).set(as(admin)).send({}).expect(400);
  });

  it('lets ADMIN and MANAGER manage endpoints; OPERATOR and VIEWER get 403 on every route', async () => {
    const { id } = await register();
    for (const role of ['VIEWER', 'OPERATOR']) {
      const member = await addMember(http, admin, role);
      await http.get('/api/webhooks').set(as(member)).expect(403);
      await http.get(`/api/webhooks/${id}`).set(as(member)).expect(403);
      await http
        .post('/api/webhooks')
        .set(as(member))
        .send({ url: URL_OK, events: ['execution.failed'] })
        .expect(403);
      await http.put(`/api/webhooks/${id}`).set(as(member)).send({ enabled: false }).expect(403);
      await http.post(`/api/webhooks/${id}/rotate-secret`).set(as(member)).expect(403);
      await http.delete(`/api/webhooks/${id}`).set(as(member)).expect(403);
    }
    const manager = await addMember(http, admin, 'MANAGER');
    const own = await register(manager);
    await http.get(`/api/webhooks/${id}`).set(as(manager)).expect(200);
    await http.put(`/api/webhooks/${own.id}`).set(as(manager)).send({ enabled: false }).expect(200);
    await http.post(`/api/webhooks/${own.id}/rotate-secret`).set(as(manager)).expect(200);
    await http.delete(`/api/webhooks/${own.id}`).set(as(manager)).expect(204);
  });

  it("answers 404 to another organisation on every webhook route and never lists another's endpoints", async () => {
    const { id } = await register();
    const stranger = await registerAccount(http, 'Other Org');
    await http.get(`/api/webhooks/${id}`).set(as(stranger)).expect(404);
    await http.put(`/api/webhooks/${id}`).set(as(stranger)).send({ enabled: false }).expect(404);
    await http.post(`/api/webhooks/${id}/rotate-secret`).set(as(stranger)).expect(404);
    await http.delete(`/api/webhooks/${id}`).set(as(stranger)).expect(404);
    const list = await http.get('/api/webhooks').set(as(stranger)).expect(200);
    expect(list.body.items).toEqual([]);
    expect((await http.get(`/api/webhooks/${id}`).set(as(admin)).expect(200)).body.enabled).toBe(true);
  });
});
