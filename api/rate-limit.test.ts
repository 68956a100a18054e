import { randomUUID } from 'node:crypto';
import { Agent, Execution, User } from '../entities';
import { mintRunToken } from '../domain/runs/run-token';
import { makeExecution } from '../test/factories';
import type { AgentHost } from '../host/server';
import { loadConfig } from '../lib/config';
import { RATE_LIMIT_DEFAULTS, type RateLimits } from '../lib/request-limits';
import { httpFor, PASSWORD, randomIp, registerAccount, uniqueEmail, addMember, type Account, type Http } from '../test/api';
import { activeAgent, registerHost } from '../test/fleet';
import { createTestContext, relaxedRateLimits, startTestWorker, type TestContext } from '../test/harness';
import { clientKey, pruneRateLimitCounters } from './rate-limit';

const DEFAULTS = loadConfig().rateLimits;

/**
 * The rules under test at their production values, or, where a flood would mean real work
 * (runs, checks), small limits in long windows. The other rules are relaxed as in the rest of
 * the suite: counters live in the database that the test files running alongside share, most
 * of them from 127.0.0.1. Every request here comes from an address of its own.
 */
const LIMITS: RateLimits = {
  ...relaxedRateLimits(DEFAULTS),
  'register.ip': DEFAULTS['register.ip'],
  'refresh.session': DEFAULTS['refresh.session'],
  'refresh.ip': DEFAULTS['refresh.ip'],
  'execute.user': { limit: 10, windowSeconds: 3600 },
  'server-test.user': { limit: 5, windowSeconds: 3600 },
  'create-agent.user': { limit: 3, windowSeconds: 3600 },
  'logout.ip': { limit: 3, windowSeconds: 2 },
  'mcp.run': { limit: 3, windowSeconds: 3600 },
};

describe('rate limits', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;

  beforeAll(async () => {
    ctx = await createTestContext({ rateLimits: LIMITS });
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Limits Org');
    ({ host, serverId } = await registerHost(http, admin));
  });
  afterAll(async () => {
    await host?.close();
    await worker?.stop();
    await ctx?.close();
  });

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  function registration(ip: string, app: Http = http, email = uniqueEmail('flood')) {
    return app
      .post('/api/auth/register')
      .set('X-Forwarded-For', ip)
      .send({ email, password: PASSWORD, name: 'Flood', organizationName: 'Flood Org' });
  }

  function expectRateLimited(
    res: { status: number; headers: Record<string, string>; body: { error: unknown } },
    rule: string,
    limit: number,
    windowSeconds: number,
  ): number {
    expect(res.status).toBe(429);
    const retryAfter = Number(res.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(windowSeconds);
    expect(res.body.error).toEqual({
      code: 'rate_limited',
      message: expect.stringMatching(/^Too many requests .*; try again in \d+ s$/),
      details: { rule, limit, windowSeconds, retryAfter },
    });
    return retryAfter;
  }

  it('stops a registration flood from one IP after 5 (counted atomically), before any account is made', async () => {
    const ip = randomIp();
    const emails = Array.from({ length: 20 }, () => uniqueEmail('flood'));
    const answers = await Promise.all(emails.map((email) => registration(ip, http, email)));
    expect(answers.filter((r) => r.status === 201)).toHaveLength(5);
    const refused = answers.filter((r) => r.status === 429);
    expect(refused).toHaveLength(15);
    const retryAfter = expectRateLimited(refused[0]!, 'register.ip', 5, 3600);
    expect(retryAfter).toBeGreaterThan(3500);
    expect(await ctx.orm.em.fork().count(User, { email: { $in: emails } })).toBe(5);
    // Another address is not affected.
    expect((await registration(randomIp())).status).toBe(201);
  });

  it('stops a refresh flood of one login after 30, from any address; other logins go on', async () => {
    const account = await registerAccount(http);
    const ip = randomIp();
    let token = account.refreshToken;
    for (let i = 0; i < 30; i++) {
      const res = await http.post('/api/auth/refresh').set('X-Forwarded-For', ip).send({ refreshToken: token }).expect(200);
      token = res.body.refreshToken;
    }
    expectRateLimited(
      await http.post('/api/auth/refresh').set('X-Forwarded-For', ip).send({ refreshToken: token }),
      'refresh.session',
      30,
      60,
    );
    expectRateLimited(
      await http.post('/api/auth/refresh').set('X-Forwarded-For', randomIp()).send({ refreshToken: token }),
      'refresh.session',
      30,
      60,
    );
    const other = await registerAccount(http);
    await http.post('/api/auth/refresh').set('X-Forwarded-For', ip).send({ refreshToken: other.refreshToken }).expect(200);
  });

  it('stops refresh guesses from one IP after 60, whatever the tokens', async () => {
    const ip = randomIp();
    for (let i = 0; i < 60; i++)
      await http
        .post('/api/auth/refresh')
        .set('X-Forwarded-For', ip)
        .send({ refreshToken: `guess-${i}` })
        .expect(401);
    expectRateLimited(
      await http.post('/api/auth/refresh').set('X-Forwarded-For', ip).send({ refreshToken: 'guess-60' }),
      'refresh.ip',
      60,
      60,
    );
  });

  it('stops an execution flood from one user; nothing is started for a refused request', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const operator = await addMember(http, admin, 'OPERATOR');
    const started: string[] = [];
    for (let i = 0; i < 10; i++) {
      const res = await http
        .post(`/api/agents/${agent.id}/execute`)
        .set(as(operator))
        .set('X-Forwarded-For', randomIp())
        .send({ prompt: `run ${i}` })
        .expect(202);
      started.push(res.body.executionId);
    }
    const refused = await http
      .post(`/api/agents/${agent.id}/execute`)
      .set(as(operator))
      .set('X-Forwarded-For', randomIp())
      .send({ prompt: 'one too many' });
    expectRateLimited(refused, 'execute.user', 10, 3600);
    // The master route counts against the same budget.
    expectRateLimited(
      await http.post('/api/master/execute').set(as(operator)).set('X-Forwarded-For', randomIp()).send({ prompt: 'also too many' }),
      'execute.user',
      10,
      3600,
    );
    const rows = await ctx.orm.em.fork().find(Execution, { agent: agent.id });
    expect(rows.map((r) => r.id).sort()).toEqual([...started].sort());
    // Another member of the same organisation has a budget of their own.
    await http
      .post(`/api/agents/${agent.id}/execute`)
      .set(as(admin))
      .set('X-Forwarded-For', randomIp())
      .send({ prompt: 'mine' })
      .expect(202);
  });

  it('stops a server test flood from one user (test and health share the budget)', async () => {
    const manager = await addMember(http, admin, 'MANAGER');
    const check = (kind: string) => http.post(`/api/servers/${serverId}/${kind}`).set(as(manager)).set('X-Forwarded-For', randomIp());
    for (let i = 0; i < 5; i++) await check(i % 2 ? 'health' : 'test').expect(200);
    expectRateLimited(await check('health'), 'server-test.user', 5, 3600);
    expectRateLimited(await check('test'), 'server-test.user', 5, 3600);
  });

  it('stops agent creation floods, directly or through the master agent', async () => {
    const manager = await addMember(http, admin, 'MANAGER');
    const create = (path: string) => http.post(path).set(as(manager)).set('X-Forwarded-For', randomIp());
    for (let i = 0; i < 3; i++)
      await create('/api/agents')
        .send({ serverId, name: `flood-${randomUUID().slice(0, 8)}` })
        .expect(201);
    expectRateLimited(await create('/api/agents').send({ serverId, name: 'one-too-many' }), 'create-agent.user', 3, 3600);
    expectRateLimited(await create('/api/master/create-agent').send({ serverId, prompt: 'make one' }), 'create-agent.user', 3, 3600);
  });

  it('answers 401 (not 429) to a request without a token on a per-user route, while its IP is still counted', async () => {
    const ip = randomIp();
    const res = await http.post(`/api/agents/${randomUUID()}/execute`).set('X-Forwarded-For', ip).send({ prompt: 'x' });
    expect(res.status).toBe(401);
    const counters = await ctx.orm.em
      .getConnection()
      .execute<{ key: string; count: number }[]>("select key, count from rate_limit_counters where key like 'execute.%' and key like ?", [
        `%${ip}`,
      ]);
    expect(counters).toEqual([{ key: `execute.ip:${ip}`, count: 1 }]);
  });

  it('starts a new window once the old one has ended', async () => {
    const ip = randomIp();
    for (let i = 0; i < 3; i++)
      await http.post('/api/auth/logout').set('X-Forwarded-For', ip).send({ refreshToken: 'unknown' }).expect(204);
    const retryAfter = expectRateLimited(
      await http.post('/api/auth/logout').set('X-Forwarded-For', ip).send({ refreshToken: 'unknown' }),
      'logout.ip',
      3,
      2,
    );
    await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 100));
    await http.post('/api/auth/logout').set('X-Forwarded-For', ip).send({ refreshToken: 'unknown' }).expect(204);
  });

  it('counts together across API instances on one database, and prunes ended windows', async () => {
    const ended = `test.ended:${randomUUID()}`;
    await ctx.orm.em
      .getConnection()
      .execute("insert into rate_limit_counters (key, count, reset_at) values (?, 7, now() - interval '1 minute')", [ended]);
    const other = await createTestContext({ rateLimits: LIMITS });
    try {
      const second = httpFor(other);
      const ip = randomIp();
      for (const app of [http, second, http, second, second]) expect((await registration(ip, app)).status).toBe(201);
      expectRateLimited(await registration(ip, http), 'register.ip', 5, 3600);
      expectRateLimited(await registration(ip, second), 'register.ip', 5, 3600);
      // The second instance's first limited request pruned the ended window.
      const left = await ctx.orm.em
        .getConnection()
        .execute<{ key: string }[]>('select key from rate_limit_counters where key = ?', [ended]);
      expect(left).toEqual([]);
    } finally {
      await other.close();
    }
  });

  it('prunes only ended windows', async () => {
    const [ended, live] = [`test.ended:${randomUUID()}`, `test.live:${randomUUID()}`];
    await ctx.orm.em
      .getConnection()
      .execute(
        "insert into rate_limit_counters (key, count, reset_at) values (?, 1, now() - interval '1 second'), (?, 1, now() + interval '1 hour')",
        [ended, live],
      );
    expect(await pruneRateLimitCounters(ctx)).toBeGreaterThanOrEqual(1);
    const left = await ctx.orm.em
      .getConnection()
      .execute<{ key: string }[]>('select key from rate_limit_counters where key in (?, ?)', [ended, live]);
    expect(left.map((r) => r.key)).toEqual([live]);
  });

  it("stops a running agent's flood of /mcp per run token; its other runs, and forged tokens naming it, count apart", async () => {
    const agent = await activeAgent(http, admin, serverId);
    const em = ctx.orm.em.fork();
    const row = await em.findOneOrFail(Agent, agent.id);
    const runs = [0, 1].map(() => makeExecution(em, row));
    await em.flush();
    const [a, b] = runs.map((run) =>
      mintRunToken(ctx.config, { executionId: run.id, organizationId: admin.organizationId, agentId: agent.id }, Date.now() + 600_000),
    );
    // One host, one address, as a host's runs share theirs.
    const ip = randomIp();
    const list = (token: string) =>
      http
        .post('/mcp')
        .set('X-Forwarded-For', ip)
        .set('Authorization', `Bearer ${token}`)
        .set('Accept', 'application/json, text/event-stream')
        .send({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
    for (let i = 0; i < 3; i++) expect((await list(a!)).status).toBe(200);
    expectRateLimited(await list(a!), 'mcp.run', 3, 3600);
    expect((await list(b!)).status).toBe(200);
    // A forged token naming run a (one character of its signature changed) is refused as such, not counted as a's.
    const i = a!.length - 10;
    const forged = a!.slice(0, i) + (a![i] === 'x' ? 'y' : 'x') + a!.slice(i + 1);
    expect(((await list(forged)).body as { error: { code: string } }).error.code).toBe('invalid_run_token');
    // The counters are keyed by a hash: the table holds no token.
    const keys = await ctx.orm.em
      .getConnection()
      .execute<{ key: string }[]>("select key from rate_limit_counters where key like 'mcp.run:%'");
    expect(keys.length).toBeGreaterThanOrEqual(3);
    expect(keys.filter((k) => k.key.includes('mcpr_'))).toEqual([]);
  });

  it('can be switched off per rule', async () => {
    const off = await createTestContext({ rateLimits: { ...LIMITS, 'logout.ip': null } });
    try {
      const app = httpFor(off);
      const ip = randomIp();
      for (let i = 0; i < 6; i++)
        await app.post('/api/auth/logout').set('X-Forwarded-For', ip).send({ refreshToken: 'unknown' }).expect(204);
    } finally {
      await off.close();
    }
  });
});

describe('clientKey', () => {
  it.each([
    ['10.1.2.3', '10.1.2.3'],
    ['::ffff:10.1.2.3', '10.1.2.3'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
  ])('%s counts as %s', (ip, key) => {
    expect(clientKey(ip)).toBe(key);
  });
});

describe('defaults', () => {
  it("refuse the issue's floods: 20 registrations, 50 refreshes, 200 runs", () => {
    expect(RATE_LIMIT_DEFAULTS['register.ip'].limit).toBeLessThan(20);
    expect(RATE_LIMIT_DEFAULTS['refresh.session'].limit).toBeLessThan(50);
    expect(RATE_LIMIT_DEFAULTS['execute.user'].limit).toBeLessThan(200);
  });
});
