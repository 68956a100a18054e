import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from './config';
import { LOGIN_LIMIT_DEFAULTS, RATE_LIMIT_DEFAULTS } from './request-limits';

const key = () => randomBytes(32).toString('base64');
const secret = () => randomBytes(40).toString('base64url');

function productionEnv(overrides: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    NODE_ENV: 'production',
    DATABASE_URL: 'postgres://u:p@db:5432/fleet',
    TEMPORAL_ADDRESS: 'temporal:7233',
    JWT_ACCESS_SECRET: secret(),
    JWT_REFRESH_SECRET: secret(),
    ENCRYPTION_KEYS: `k2:${key()},k1:${key()}`,
    ...overrides,
  };
}

function problemsOf(env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('parses a complete production environment with defaults', () => {
    const config = loadConfig(productionEnv({ PORT: '8080' }));
    expect(config.isProduction).toBe(true);
    expect(config.http).toEqual({ host: '0.0.0.0', port: 8080, bodyLimit: '1mb', trustProxy: false });
    expect(config.temporal).toMatchObject({ namespace: 'default', taskQueue: 'mcp-fleet', address: 'temporal:7233' });
    expect(config.auth).toMatchObject({ accessTokenTtlSeconds: 900, bcryptCost: 12 });
    expect(config.encryptionKeys.map((k) => k.id)).toEqual(['k2', 'k1']);
    expect(config.encryptionKeys[0]!.key).toHaveLength(32);
  });

  it.each([
    ['JWT_ACCESS_SECRET', /JWT_ACCESS_SECRET is required/],
    ['JWT_REFRESH_SECRET', /JWT_REFRESH_SECRET is required/],
    ['ENCRYPTION_KEYS', /ENCRYPTION_KEYS is required/],
    ['DATABASE_URL', /DATABASE_URL is required/],
    ['TEMPORAL_ADDRESS', /TEMPORAL_ADDRESS is required/],
  ])('refuses to start in production without %s', (name, message) => {
    expect(problemsOf(productionEnv({ [name]: undefined }))).toEqual([expect.stringMatching(message)]);
  });

  it('versions workers only when a deployment is named, with the package version and commit as the default build id', () => {
    expect(loadConfig(productionEnv()).worker.deployment).toBeUndefined();
    const named = loadConfig(productionEnv({ WORKER_DEPLOYMENT_NAME: 'mcp-fleet', GIT_COMMIT: '0123456789abcdef' })).worker.deployment;
    expect(named).toEqual({ name: 'mcp-fleet', buildId: '0.1.0-0123456789ab' });
    expect(loadConfig(productionEnv({ WORKER_DEPLOYMENT_NAME: 'mcp-fleet', WORKER_BUILD_ID: 'blue' })).worker.deployment?.buildId).toBe(
      'blue',
    );
    expect(() => loadConfig(productionEnv({ WORKER_DEPLOYMENT_NAME: 'mcp.fleet' }))).toThrow(/WORKER_DEPLOYMENT_NAME/);
  });

  it('refuses short, identical or placeholder secrets', () => {
    expect(problemsOf(productionEnv({ JWT_ACCESS_SECRET: 'short' }))).toEqual([
      expect.stringMatching(/JWT_ACCESS_SECRET: must be at least 32/),
    ]);
    const same = secret();
    expect(problemsOf(productionEnv({ JWT_ACCESS_SECRET: same, JWT_REFRESH_SECRET: same }))).toEqual([
      expect.stringMatching(/must differ/),
    ]);
    expect(problemsOf(productionEnv({ JWT_ACCESS_SECRET: 'a'.repeat(40) }))).toEqual([expect.stringMatching(/placeholder/)]);
  });

  it('rejects malformed encryption keys and values with the variable name', () => {
    expect(problemsOf(productionEnv({ ENCRYPTION_KEYS: `k1:${randomBytes(16).toString('base64')}` }))).toEqual([
      expect.stringMatching(/32 bytes/),
    ]);
    expect(problemsOf(productionEnv({ ENCRYPTION_KEYS: 'no-colon' }))).toEqual([expect.stringMatching(/keyId:base64key/)]);
    expect(problemsOf(productionEnv({ ENCRYPTION_KEYS: `a:${key()},a:${key()}` }))).toEqual([expect.stringMatching(/duplicate key ids/)]);
    expect(problemsOf(productionEnv({ PORT: 'abc' }))).toEqual([expect.stringMatching(/^PORT:/)]);
    expect(problemsOf(productionEnv({ DATABASE_URL: 'mysql://x' }))).toEqual([expect.stringMatching(/^DATABASE_URL:/)]);
  });

  it('has request limits by default, and RATE_LIMITS replaces or switches off single rules', () => {
    expect(loadConfig(productionEnv()).rateLimits).toEqual(RATE_LIMIT_DEFAULTS);
    expect(RATE_LIMIT_DEFAULTS).toMatchObject({
      'register.ip': { limit: 5, windowSeconds: 3600 },
      'refresh.session': { limit: 30, windowSeconds: 60 },
      'execute.user': { limit: 60, windowSeconds: 60 },
      'server-test.user': { limit: 20, windowSeconds: 60 },
    });
    const limits = loadConfig(
      productionEnv({ RATE_LIMITS: ' execute.user=100/1m,register.ip=off\nlogout.ip=10/30 server-test.ip=2/1h ' }),
    ).rateLimits;
    expect(limits).toEqual({
      ...RATE_LIMIT_DEFAULTS,
      'execute.user': { limit: 100, windowSeconds: 60 },
      'register.ip': null,
      'logout.ip': { limit: 10, windowSeconds: 30 },
      'server-test.ip': { limit: 2, windowSeconds: 3600 },
    });
    expect(loadConfig(productionEnv({ RATE_LIMITS: '' })).rateLimits).toEqual(RATE_LIMIT_DEFAULTS);
  });

  it.each([
    ['execute.user=lots', /^RATE_LIMITS: "execute\.user=lots" must be <rule>=<count>\/<window>/],
    ['execute.users=10/1m', /^RATE_LIMITS: unknown rule "execute\.users"; the rules are register\.ip, /],
    ['execute.user=0/1m', /^RATE_LIMITS: "execute\.user=0\/1m": the count must be at least 1/],
    ['execute.user=10/25h', /window from 1 s to 24 h/],
    ['execute.user=10/1d', /must be <rule>=<count>\/<window>/],
  ])('refuses RATE_LIMITS=%s naming the variable', (value, message) => {
    expect(problemsOf(productionEnv({ RATE_LIMITS: value }))).toEqual([expect.stringMatching(message)]);
  });

  it('has the login throttle limits by default, and LOGIN_LIMITS replaces single ones', () => {
    expect(loadConfig(productionEnv()).auth.loginLimits).toEqual({ perAccountAndIp: 5, perIp: 20, perAccount: 100, windowSeconds: 900 });
    expect(loadConfig(productionEnv({ LOGIN_LIMITS: ' perIp=50,window=30m\nperAccount=400 ' })).auth.loginLimits).toEqual({
      ...LOGIN_LIMIT_DEFAULTS,
      perIp: 50,
      perAccount: 400,
      windowSeconds: 1800,
    });
    expect(loadConfig(productionEnv({ LOGIN_LIMITS: 'perAccountAndIp=3 window=90' })).auth.loginLimits).toEqual({
      ...LOGIN_LIMIT_DEFAULTS,
      perAccountAndIp: 3,
      windowSeconds: 90,
    });
  });

  it.each([
    ['perIp=lots', /^LOGIN_LIMITS: "perIp=lots" must be perAccountAndIp=<count>, perIp=<count>, perAccount=<count> or window=<duration>/],
    ['perUser=5', /must be perAccountAndIp=<count>/],
    ['perIp=0', /^LOGIN_LIMITS: "perIp=0": the count must be at least 1/],
    ['window=25h', /the window must be from 1 s to 24 h/],
    ['window=0', /the window must be from 1 s to 24 h/],
  ])('refuses LOGIN_LIMITS=%s naming the variable', (value, message) => {
    expect(problemsOf(productionEnv({ LOGIN_LIMITS: value }))).toEqual([expect.stringMatching(message)]);
  });

  it('reads the limits on recurring tasks: one minute and 1000 by default, a floor of at most a day', () => {
    expect(loadConfig(productionEnv()).tasks).toEqual({ minIntervalSeconds: 60, maxRecurringPerOrganization: 1000 });
    expect(loadConfig(productionEnv({ TASK_MIN_INTERVAL_SECONDS: '300', TASK_MAX_RECURRING: '50' })).tasks).toEqual({
      minIntervalSeconds: 300,
      maxRecurringPerOrganization: 50,
    });
    expect(problemsOf(productionEnv({ TASK_MIN_INTERVAL_SECONDS: '86401' }))).toEqual([
      expect.stringMatching(/^TASK_MIN_INTERVAL_SECONDS: /),
    ]);
    expect(problemsOf(productionEnv({ TASK_MAX_RECURRING: '0' }))).toEqual([expect.stringMatching(/^TASK_MAX_RECURRING: /)]);
  });

  it('generates development secrets once, keeps them under the data dir, and reuses them', () => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-config-'));
    const first = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir });
    const second = loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir });
    expect(first.auth.accessSecret).toHaveLength(64);
    expect(first.auth.accessSecret).not.toBe(first.auth.refreshSecret);
    expect(second.auth).toEqual(first.auth);
    expect(second.encryptionKeys[0]!.key.equals(first.encryptionKeys[0]!.key)).toBe(true);
    const file = path.join(dataDir, 'secrets.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toHaveProperty('JWT_ACCESS_SECRET', first.auth.accessSecret);
    expect(first.http.host).toBe('127.0.0.1');
  });
});
