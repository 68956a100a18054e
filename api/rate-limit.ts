import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Middleware } from 'koa';
import type { RateLimit, RateLimitRule } from '../lib/request-limits';
import type { AppContextExtras, AppState } from './context';
import type { AppDeps } from './deps';
import { hashRefreshToken } from './auth/tokens';
import { AppError } from '../domain/errors';
import { bearerRunToken } from '../domain/runs/run-token';

/** What a route does, as far as its limits go: `<action>.<scope>` rules in `config.rateLimits`. */
export type RateLimitAction =
  | 'register'
  | 'refresh'
  | 'logout'
  | 'execute'
  | 'create-agent'
  | 'server-test'
  | 'tool-install'
  | 'save-task'
  | 'answer-input'
  | 'api-key'
  | 'mcp';

type Scope = 'ip' | 'user' | 'session' | 'run';

/** A scope as a refusal names it. */
const SCOPE_NAMES: Record<Scope, string> = { ip: 'ip', user: 'user', session: 'login', run: 'run token' };

type AppMiddleware = Middleware<AppState, AppContextExtras>;
type Ctx = Parameters<AppMiddleware>[0];
type RateLimitDeps = Pick<AppDeps, 'config' | 'orm'>;
type RateLimitMiddlewareDeps = RateLimitDeps & Pick<AppDeps, 'logger' | 'metrics'>;

interface Rule extends RateLimit {
  name: RateLimitRule;
  scope: Scope;
}

interface Hit {
  key: string;
  count: number;
  retry_after: number;
}

/** Old windows are deleted at most this often per API instance (a new window replaces an old row anyway). */
const PRUNE_EVERY_MS = 60_000;
const lastPrune = new WeakMap<object, number>();

/**
 * The IP a limit counts against. IPv4-mapped IPv6 is its IPv4 address; other IPv6 addresses
 * count by their /64, the block one subscriber gets, so rotating through it gains nothing.
 */
export function clientKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (isIP(ip) !== 6) return ip;
  const canonical = new URL(`http://[${ip.replace(/%.*$/, '')}]/`).hostname.slice(1, -1);
  const [head = '', tail] = canonical.split('::');
  const high = head ? head.split(':') : [];
  const low = tail ? tail.split(':') : [];
  const words = tail === undefined ? high : [...high, ...new Array<string>(8 - high.length - low.length).fill('0'), ...low];
  return `${words.slice(0, 4).join(':')}::/64`;
}

/** The refresh token's login (session family): rotation gives a new token per refresh, the family stays. */
async function loginOf(ctx: Ctx, deps: RateLimitDeps): Promise<string | undefined> {
  const token = (ctx.request as { body?: { refreshToken?: unknown } }).body?.refreshToken;
  if (typeof token !== 'string' || token.length === 0 || token.length > 512) return undefined;
  const rows = await deps.orm.em
    .getConnection()
    .execute<{ family_id: string }[]>('select family_id from sessions where refresh_token_hash = ?', [
      hashRefreshToken(deps.config, token),
    ]);
  return rows[0]?.family_id;
}

/**
 * The run token the request bears (`/mcp`), as a hash: the counter's key names no secret. Counted
 * before the token is checked, by the whole token rather than its execution id, so that forged
 * tokens naming a run fill buckets of their own, not the run's.
 */
function runTokenOf(ctx: Ctx): string | undefined {
  const token = bearerRunToken(ctx.get('authorization'));
  return token && createHash('sha256').update(token).digest('hex');
}

async function subjectOf(scope: Scope, ctx: Ctx, deps: RateLimitDeps): Promise<string | undefined> {
  if (scope === 'ip') return clientKey(ctx.ip);
  if (scope === 'run') return runTokenOf(ctx);
  // Without a valid token there is no user: the route answers 401 after this, and the IP rule still counts.
  if (scope === 'user') return ctx.state.auth?.userId;
  return loginOf(ctx, deps);
}

function keyOf(rule: Rule, subject: string): string {
  // X-Forwarded-For text is the client's when a proxy is trusted: long values are hashed to fit the column.
  return `${rule.name}:${subject.length > 100 ? createHash('sha256').update(subject).digest('hex') : subject}`;
}

/**
 * Counts one request against every key in one statement. A key's window starts with its first
 * request and lasts `windowSeconds`; a request after `reset_at` starts a new window at 1. The
 * database clock decides, so API instances with skewed clocks agree. Keys are locked in sorted
 * order, so concurrent requests never deadlock.
 */
async function hit(deps: RateLimitDeps, keys: { key: string; windowSeconds: number }[]): Promise<Hit[]> {
  const sorted = [...keys].sort((a, b) => (a.key < b.key ? -1 : 1));
  const values = sorted.map(() => "(?, 1, now() + ?::int * interval '1 second')").join(', ');
  return deps.orm.em.getConnection().execute<Hit[]>(
    `insert into rate_limit_counters (key, count, reset_at) values ${values}
     on conflict (key) do update set
       count = case when rate_limit_counters.reset_at <= now() then 1 else rate_limit_counters.count + 1 end,
       reset_at = case when rate_limit_counters.reset_at <= now() then excluded.reset_at else rate_limit_counters.reset_at end
     returning key, count, ceil(extract(epoch from reset_at - now()))::int as retry_after`,
    sorted.flatMap((k) => [k.key, k.windowSeconds]),
  );
}

/** Deletes the counters whose window has ended (they would restart at 1 anyway). */
export async function pruneRateLimitCounters(deps: Pick<AppDeps, 'orm'>): Promise<number> {
  const result = await deps.orm.em
    .getConnection()
    .execute<{ affectedRows?: number }>('delete from rate_limit_counters where reset_at < now()', [], 'run');
  return result.affectedRows ?? 0;
}

/**
 * Middleware for a route's `before:` hook: counts the request against each configured rule of
 * the given actions (per IP, per user, per login) and answers 429 `rate_limited` with
 * Retry-After once any of them is over its limit. It runs before requireAuth and validation,
 * so a refused request costs one statement and no bcrypt, workflow or MCP call.
 */
export function rateLimit(deps: RateLimitMiddlewareDeps, ...actions: RateLimitAction[]): AppMiddleware {
  const rules: Rule[] = [];
  for (const [name, limit] of Object.entries(deps.config.rateLimits) as [RateLimitRule, RateLimit | null][]) {
    const [action, scope] = name.split('.') as [RateLimitAction, Scope];
    if (limit && actions.includes(action)) rules.push({ name, scope, ...limit });
  }
  return async (ctx, next) => {
    const keys: { key: string; windowSeconds: number; rule: Rule }[] = [];
    for (const rule of rules) {
      const subject = await subjectOf(rule.scope, ctx, deps);
      if (subject) keys.push({ key: keyOf(rule, subject), windowSeconds: rule.windowSeconds, rule });
    }
    if (keys.length > 0) {
      const counted = new Map((await hit(deps, keys)).map((h) => [h.key, h]));
      let refusal: { rule: Rule; retryAfter: number } | undefined;
      for (const { key, rule } of keys) {
        const counter = counted.get(key)!;
        if (counter.count <= rule.limit) continue;
        const retryAfter = Math.max(1, counter.retry_after);
        if (!refusal || retryAfter > refusal.retryAfter) refusal = { rule, retryAfter };
      }
      await pruneWhenDue(deps, ctx);
      if (refusal) {
        const { rule, retryAfter } = refusal;
        deps.metrics.rateLimitedBy(rule.name);
        ctx.state.log?.info({ rule: rule.name, limit: rule.limit, windowSeconds: rule.windowSeconds, retryAfter }, 'rate limited');
        throw new AppError(
          429,
          'rate_limited',
          `Too many requests (${rule.limit} per ${rule.windowSeconds} s per ${SCOPE_NAMES[rule.scope]}); try again in ${retryAfter} s`,
          { rule: rule.name, limit: rule.limit, windowSeconds: rule.windowSeconds, retryAfter },
          { 'Retry-After': String(retryAfter) },
        );
      }
    }
    await next();
  };
}

async function pruneWhenDue(deps: RateLimitDeps & Pick<AppDeps, 'logger'>, ctx: Ctx): Promise<void> {
  const now = Date.now();
  if (now - (lastPrune.get(deps.orm) ?? 0) < PRUNE_EVERY_MS) return;
  lastPrune.set(deps.orm, now);
  try {
    await pruneRateLimitCounters(deps);
  } catch (error) {
    // Pruning is housekeeping: a failure must not fail the request it rode on.
    (ctx.state.log ?? deps.logger).warn({ err: error }, 'pruning rate limit counters failed');
  }
}
