import jwt from 'jsonwebtoken';
import { createTestContext, type TestContext } from '../../../test/harness';
import { httpFor, PASSWORD, randomIp, registerAccount, uniqueEmail, type Http } from '../../../test/api';
import { AuditLog } from '../../../entities';
import { LOGIN_LIMIT_DEFAULTS as LOGIN_LIMITS } from '../../../lib/request-limits';
import { JWT_AUDIENCE, JWT_ISSUER } from '../../auth/tokens';

describe('auth', () => {
  let ctx: TestContext;
  let http: Http;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
  });
  afterAll(() => ctx.close());

  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

  describe('register', () => {
    it('creates the organisation and makes the registrant its ADMIN, without leaking the hash', async () => {
      const email = uniqueEmail('Mixed.Case');
      const res = await http
        .post('/api/auth/register')
        .send({ email: `  ${email.toUpperCase()} `, password: PASSWORD, name: 'Ada', organizationName: 'Ünïcode Órg & Co' })
        .expect(201);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body.user).toMatchObject({
        email: email.toLowerCase(),
        name: 'Ada',
        role: 'ADMIN',
        organizationId: res.body.organization.id,
      });
      expect(res.body.organization.slug).toMatch(/^unicode-org-co(-\d+)?$/);
      expect(res.body.expiresIn).toBe(900);
      expect(res.body.refreshToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(JSON.stringify(res.body)).not.toMatch(/passwordHash|\$2[aby]\$/);
      const claims = jwt.decode(res.body.accessToken) as Record<string, unknown>;
      expect(claims).toMatchObject({
        sub: res.body.user.id,
        org: res.body.organization.id,
        role: 'ADMIN',
        typ: 'access',
        iss: JWT_ISSUER,
        aud: JWT_AUDIENCE,
      });
    });

    it('gives organisations with the same name different slugs', async () => {
      const a = await http
        .post('/api/auth/register')
        .send({ email: uniqueEmail(), password: PASSWORD, name: 'A', organizationName: 'Same Name Inc' })
        .expect(201);
      const b = await http
        .post('/api/auth/register')
        .send({ email: uniqueEmail(), password: PASSWORD, name: 'B', organizationName: 'Same Name Inc' })
        .expect(201);
      expect(a.body.organization.slug).not.toBe(b.body.organization.slug);
    });

    it('refuses a duplicate email with 409 email_taken', async () => {
      const account = await registerAccount(http);
      const res = await http
        .post('/api/auth/register')
        .send({ email: account.email, password: PASSWORD, name: 'Again', organizationName: 'Other' })
        .expect(409);
      expect(res.body.error.code).toBe('email_taken');
    });

    it('audits the registration', async () => {
      const account = await registerAccount(http);
      const rows = await ctx.orm.em.fork().find(AuditLog, { organization: account.organizationId, action: 'auth.register' });
      expect(rows).toHaveLength(1);
      expect(rows[0]).toMatchObject({ resourceType: 'user', resourceId: account.userId });
      expect(JSON.stringify(rows[0]!.changes)).not.toContain(PASSWORD);
    });
  });

  describe('bad input never reaches a 500', () => {
    it.each([
      ['missing fields', {}, ['body.email', 'body.password', 'body.name', 'body.organizationName']],
      [
        'wrong types',
        { email: 42, password: ['x'], name: null, organizationName: {} },
        ['body.email', 'body.password', 'body.name', 'body.organizationName'],
      ],
      ['a bad email', { email: 'not-an-email', password: PASSWORD, name: 'x', organizationName: 'y' }, ['body.email']],
      ['a short password', { email: uniqueEmail(), password: 'short', name: 'x', organizationName: 'y' }, ['body.password']],
      ['a password over 72 bytes', { email: uniqueEmail(), password: 'é'.repeat(37), name: 'x', organizationName: 'y' }, ['body.password']],
      ['a huge name', { email: uniqueEmail(), password: PASSWORD, name: 'x'.repeat(100_000), organizationName: 'y' }, ['body.name']],
      ['an unknown field', { email: uniqueEmail(), password: PASSWORD, name: 'x', organizationName: 'y', role: 'ADMIN' }, ['body']],
    ])('%s → 400 validation_failed with field paths', async (_label, body, paths) => {
      const res = await http.post('/api/auth/register').send(body).expect(400);
      expect(res.body.error.code).toBe('validation_failed');
      expect(res.body.error.details.map((d: { path: string }) => d.path)).toEqual(expect.arrayContaining(paths));
    });

    it('says why the password is refused at 73 bytes', async () => {
      const res = await http
        .post('/api/auth/register')
        .send({ email: uniqueEmail(), password: 'a'.repeat(73), name: 'x', organizationName: 'y' })
        .expect(400);
      expect(res.body.error.details).toEqual([
        expect.objectContaining({ path: 'body.password', message: expect.stringMatching(/at most 72 bytes/) }),
      ]);
    });

    it('answers non-JSON bodies with 415, malformed JSON with 400 and oversized bodies with 413', async () => {
      expect((await http.post('/api/auth/login').set('Content-Type', 'text/plain').send('email=x').expect(415)).body.error.code).toBe(
        'unsupported_media_type',
      );
      expect(
        (await http.post('/api/auth/login').set('Content-Type', 'application/json').send('{"email":').expect(400)).body.error.code,
      ).toBe('invalid_json');
      const huge = JSON.stringify({ email: 'a@b.co', password: 'x'.repeat(3 * 1024 * 1024) });
      expect((await http.post('/api/auth/login').set('Content-Type', 'application/json').send(huge).expect(413)).body.error.code).toBe(
        'payload_too_large',
      );
    });
  });

  describe('login', () => {
    it('logs in and audits it', async () => {
      const account = await registerAccount(http);
      const res = await http
        .post('/api/auth/login')
        .set('X-Forwarded-For', randomIp())
        .send({ email: account.email.toUpperCase(), password: PASSWORD })
        .expect(200);
      expect(res.body.user.id).toBe(account.userId);
      expect(res.body.user.lastLoginAt).not.toBeNull();
      expect(await ctx.orm.em.fork().count(AuditLog, { organization: account.organizationId, action: 'auth.login' })).toBe(1);
    });

    it('answers a wrong password and an unknown email identically, and audits the failure', async () => {
      const account = await registerAccount(http);
      const wrongPassword = await http
        .post('/api/auth/login')
        .set('X-Forwarded-For', randomIp())
        .send({ email: account.email, password: 'wrong password!' })
        .expect(401);
      const unknownEmail = await http
        .post('/api/auth/login')
        .set('X-Forwarded-For', randomIp())
        .send({ email: uniqueEmail(), password: 'wrong password!' })
        .expect(401);
      expect(wrongPassword.body).toEqual({ error: { code: 'invalid_credentials', message: 'Email or password is incorrect' } });
      expect(unknownEmail.body).toEqual(wrongPassword.body);
      const failed = await ctx.orm.em.fork().find(AuditLog, { organization: account.organizationId, action: 'auth.login_failed' });
      expect(failed).toHaveLength(1);
      expect(failed[0]!.actorEmail).toBe(account.email);
    });

    it('takes about the same time for an unknown email as for a wrong password (real bcrypt cost)', async () => {
      const slowCtx = { ...ctx, config: { ...ctx.config, auth: { ...ctx.config.auth, bcryptCost: 10 } } };
      const slow = httpFor(slowCtx);
      const email = uniqueEmail();
      await slow.post('/api/auth/register').send({ email, password: PASSWORD, name: 'T', organizationName: 'Timing' }).expect(201);
      const time = async (body: object) => {
        const started = process.hrtime.bigint();
        await slow.post('/api/auth/login').set('X-Forwarded-For', randomIp()).send(body).expect(401);
        return Number(process.hrtime.bigint() - started) / 1e6;
      };
      const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
      const known: number[] = [];
      const unknown: number[] = [];
      for (let i = 0; i < 5; i++) {
        known.push(await time({ email, password: 'wrong password!' }));
        unknown.push(await time({ email: uniqueEmail(), password: 'wrong password!' }));
      }
      const ratio = median(unknown) / median(known);
      // Without the dummy hash an unknown email answers in a few ms against ~50 ms for bcrypt
      // (ratio < 0.1). The bounds are wide because test files run in parallel on 2 cores.
      expect(ratio).toBeGreaterThan(0.5);
      expect(ratio).toBeLessThan(2.5);
    });

    const wrong = (email: string, ip: string) =>
      http.post('/api/auth/login').set('X-Forwarded-For', ip).send({ email, password: 'wrong password!' });
    const right = (email: string, ip: string) =>
      http.post('/api/auth/login').set('X-Forwarded-For', ip).send({ email, password: PASSWORD });

    it('locks an account for one IP after 5 failures from it (429 with Retry-After, even for the right password), while its owner logs in from another IP', async () => {
      const account = await registerAccount(http);
      const attacker = randomIp();
      for (let i = 0; i < LOGIN_LIMITS.perAccountAndIp; i++) await wrong(account.email, attacker).expect(401);
      const blocked = await right(account.email, attacker).expect(429);
      expect(blocked.body.error.code).toBe('too_many_attempts');
      const retryAfter = Number(blocked.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(14 * 60);
      expect(retryAfter).toBeLessThanOrEqual(15 * 60);
      expect(blocked.body.error.details).toEqual({ retryAfter });
      await right(account.email, randomIp()).expect(200);
    });

    it(`throttles one IP after ${LOGIN_LIMITS.perIp} failures, whatever the emails`, async () => {
      const ip = randomIp();
      for (let i = 0; i < LOGIN_LIMITS.perIp; i++) await wrong(uniqueEmail(), ip).expect(401);
      const account = await registerAccount(http);
      await right(account.email, ip).expect(429);
      await right(account.email, randomIp()).expect(200);
    });

    it(`locks an account from every IP only at the much higher ceiling of ${LOGIN_LIMITS.perAccount} failures`, async () => {
      const account = await registerAccount(http);
      // From a new address each time (as a botnet would), in batches to keep the test short.
      for (let sent = 0; sent < LOGIN_LIMITS.perAccount - 1; sent += 20) {
        const batch = Array.from({ length: Math.min(20, LOGIN_LIMITS.perAccount - 1 - sent) }, () => wrong(account.email, randomIp()));
        expect((await Promise.all(batch)).map((r) => r.status)).toEqual(batch.map(() => 401));
      }
      await right(account.email, randomIp()).expect(200);
      await wrong(account.email, randomIp()).expect(401);
      const blocked = await right(account.email, randomIp()).expect(429);
      expect(blocked.body.error.code).toBe('too_many_attempts');
    });

    it('applies the limits and window set in LOGIN_LIMITS (config.auth.loginLimits)', async () => {
      const strict = await createTestContext({
        auth: { ...ctx.config.auth, loginLimits: { ...LOGIN_LIMITS, perAccountAndIp: 2, windowSeconds: 60 } },
      });
      try {
        const strictHttp = httpFor(strict);
        const account = await registerAccount(strictHttp);
        const attacker = randomIp();
        const attempt = (password: string) =>
          strictHttp.post('/api/auth/login').set('X-Forwarded-For', attacker).send({ email: account.email, password });
        await attempt('wrong password!').expect(401);
        await attempt('wrong password!').expect(401);
        const blocked = await attempt(PASSWORD).expect(429);
        const retryAfter = Number(blocked.headers['retry-after']);
        expect(retryAfter).toBeGreaterThan(50);
        expect(retryAfter).toBeLessThanOrEqual(60);
      } finally {
        await strict.close();
      }
    });

    it('counts parallel attempts: 30 wrong passwords at once from one IP get 5 answers of 401 and 25 of 429', async () => {
      const account = await registerAccount(http);
      const ip = randomIp();
      const results = await Promise.all(Array.from({ length: 30 }, () => wrong(account.email, ip)));
      const count = (status: number) => results.filter((r) => r.status === status).length;
      expect({ 401: count(401), 429: count(429) }).toEqual({ 401: LOGIN_LIMITS.perAccountAndIp, 429: 30 - LOGIN_LIMITS.perAccountAndIp });

      const sprayIp = randomIp();
      const spray = await Promise.all(Array.from({ length: LOGIN_LIMITS.perIp + 10 }, () => wrong(uniqueEmail(), sprayIp)));
      expect(spray.filter((r) => r.status === 401)).toHaveLength(LOGIN_LIMITS.perIp);
    });
  });

  describe('tokens', () => {
    it('GET /api/auth/me returns the caller, the organisation and packed CASL rules', async () => {
      const account = await registerAccount(http, 'Me Org');
      const res = await http.get('/api/auth/me').set(bearer(account.accessToken)).expect(200);
      expect(res.body.user).toMatchObject({ id: account.userId, role: 'ADMIN' });
      expect(res.body.organization).toMatchObject({ id: account.organizationId, name: 'Me Org' });
      expect(res.body.rules).toEqual(expect.arrayContaining([expect.arrayContaining(['manage'])]));
      expect(JSON.stringify(res.body.rules)).toContain(account.organizationId);
    });

    it('requires a token', async () => {
      const res = await http.get('/api/auth/me').expect(401);
      expect(res.body.error.code).toBe('unauthorized');
      expect(res.headers['www-authenticate']).toBe('Bearer');
    });

    it('refuses tampered, expired, alg:none and wrong-secret tokens', async () => {
      const account = await registerAccount(http);
      const claims = jwt.decode(account.accessToken) as jwt.JwtPayload;
      const { iat: _iat, exp: _exp, ...payload } = claims;
      const [h, p, s] = account.accessToken.split('.') as [string, string, string];
      const tamperedPayload = Buffer.from(
        JSON.stringify({ ...claims, role: 'ADMIN', org: '00000000-0000-4000-8000-000000000000' }),
      ).toString('base64url');
      const cases: Array<[string, string, string]> = [
        ['tampered payload', `${h}.${tamperedPayload}.${s}`, 'invalid_token'],
        ['tampered signature', `${h}.${p}.${s.slice(0, -4)}AAAA`, 'invalid_token'],
        ['expired', jwt.sign({ ...payload }, ctx.config.auth.accessSecret, { expiresIn: -10 }), 'token_expired'],
        ['alg none', `${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${p}.`, 'invalid_token'],
        ['wrong secret', jwt.sign(payload, 'another-secret-that-is-long-enough-1234567890'), 'invalid_token'],
        ['refresh secret', jwt.sign(payload, ctx.config.auth.refreshSecret), 'invalid_token'],
        ['HS512', jwt.sign(payload, ctx.config.auth.accessSecret, { algorithm: 'HS512' }), 'invalid_token'],
        ['no typ claim', jwt.sign({ ...payload, typ: undefined }, ctx.config.auth.accessSecret), 'invalid_token'],
        [
          'unknown session',
          jwt.sign({ ...payload, sid: '00000000-0000-4000-8000-000000000000' }, ctx.config.auth.accessSecret),
          'token_revoked',
        ],
        ['refresh token as access token', account.refreshToken, 'invalid_token'],
      ];
      for (const [label, token, code] of cases) {
        const res = await http.get('/api/auth/me').set(bearer(token));
        expect([label, res.status, res.body.error?.code]).toEqual([label, 401, code]);
      }
      await http.get('/api/auth/me').set(bearer(account.accessToken)).expect(200);
    });

    it('refresh rotates the pair; the old refresh token is spent', async () => {
      const account = await registerAccount(http);
      const res = await http.post('/api/auth/refresh').send({ refreshToken: account.refreshToken }).expect(200);
      expect(res.body.refreshToken).not.toBe(account.refreshToken);
      await http.get('/api/auth/me').set(bearer(res.body.accessToken)).expect(200);
      // The access token from before the rotation still works until it expires.
      await http.get('/api/auth/me').set(bearer(account.accessToken)).expect(200);
      const next = await http.post('/api/auth/refresh').send({ refreshToken: res.body.refreshToken }).expect(200);
      expect(next.body.user.id).toBe(account.userId);
    });

    it('presenting a spent refresh token revokes the whole family', async () => {
      const account = await registerAccount(http);
      const second = await http.post('/api/auth/refresh').send({ refreshToken: account.refreshToken }).expect(200);
      const third = await http.post('/api/auth/refresh').send({ refreshToken: second.body.refreshToken }).expect(200);

      const reused = await http.post('/api/auth/refresh').send({ refreshToken: account.refreshToken }).expect(401);
      expect(reused.body.error.code).toBe('refresh_reused');

      expect((await http.post('/api/auth/refresh').send({ refreshToken: third.body.refreshToken }).expect(401)).body.error.code).toBe(
        'session_revoked',
      );
      for (const token of [account.accessToken, second.body.accessToken, third.body.accessToken]) {
        expect((await http.get('/api/auth/me').set(bearer(token)).expect(401)).body.error.code).toBe('token_revoked');
      }
      expect(await ctx.orm.em.fork().count(AuditLog, { organization: account.organizationId, action: 'auth.refresh_reused' })).toBe(1);
    });

    it('lets only one of two concurrent refreshes with the same token win', async () => {
      const account = await registerAccount(http);
      const results = await Promise.all([1, 2, 3].map(() => http.post('/api/auth/refresh').send({ refreshToken: account.refreshToken })));
      expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1);
      expect(results.filter((r) => r.status === 401).every((r) => r.body.error.code === 'refresh_reused')).toBe(true);
    });

    it('refuses an access token used as a refresh token, and garbage', async () => {
      const account = await registerAccount(http);
      expect((await http.post('/api/auth/refresh').send({ refreshToken: account.accessToken }).expect(401)).body.error.code).toBe(
        'invalid_refresh_token',
      );
      expect((await http.post('/api/auth/refresh').send({ refreshToken: 'nope' }).expect(401)).body.error.code).toBe(
        'invalid_refresh_token',
      );
    });

    it('logout ends the session at once: its access and refresh tokens stop working', async () => {
      const account = await registerAccount(http);
      const otherLogin = await http
        .post('/api/auth/login')
        .set('X-Forwarded-For', randomIp())
        .send({ email: account.email, password: PASSWORD })
        .expect(200);
      await http.post('/api/auth/logout').send({ refreshToken: account.refreshToken }).expect(204);
      expect((await http.get('/api/auth/me').set(bearer(account.accessToken)).expect(401)).body.error.code).toBe('token_revoked');
      expect((await http.post('/api/auth/refresh').send({ refreshToken: account.refreshToken }).expect(401)).body.error.code).toBe(
        'session_revoked',
      );
      // Another login of the same user is another family and lives on.
      await http.get('/api/auth/me').set(bearer(otherLogin.body.accessToken)).expect(200);
      await http.post('/api/auth/logout').send({ refreshToken: 'unknown-token' }).expect(204);
      expect(await ctx.orm.em.fork().count(AuditLog, { organization: account.organizationId, action: 'auth.logout' })).toBe(1);
    });
  });
});
