import { z } from 'zod';

/**
 * The request limits (RATE_LIMITS) and the login throttle's limits (LOGIN_LIMITS): their
 * defaults and how a setting replaces them. lib/config.ts reads the two variables and hands
 * them, trimmed, to the schemas here.
 */

/** A variable's value as lib/config.ts passes it on: trimmed, undefined when empty. */
const setting = z.string().optional();

export interface RateLimit {
  limit: number;
  windowSeconds: number;
}

/**
 * Request limits (api/rate-limit.ts): `<action>.<scope>` = at most `limit` requests per
 * `windowSeconds`, per client IP, per user, per login (`session`: one refresh-token family), or
 * per run token (`run`: a running agent calling `/mcp`).
 * Set far above what a person or a well-behaved client does, and far below the floods an
 * attacker needs (issue 8: 20 registrations, 50 refreshes in 0.6 s, 200 executions).
 */
export const RATE_LIMIT_DEFAULTS = {
  'register.ip': { limit: 5, windowSeconds: 3600 },
  'refresh.session': { limit: 30, windowSeconds: 60 },
  'refresh.ip': { limit: 60, windowSeconds: 60 },
  'logout.ip': { limit: 30, windowSeconds: 60 },
  'execute.user': { limit: 60, windowSeconds: 60 },
  'execute.ip': { limit: 120, windowSeconds: 60 },
  'create-agent.user': { limit: 30, windowSeconds: 60 },
  'create-agent.ip': { limit: 60, windowSeconds: 60 },
  'server-test.user': { limit: 20, windowSeconds: 60 },
  'server-test.ip': { limit: 40, windowSeconds: 60 },
  // Installs and uninstalls run package managers on the servers.
  'tool-install.user': { limit: 30, windowSeconds: 60 },
  'tool-install.ip': { limit: 60, windowSeconds: 60 },
  'save-task.user': { limit: 60, windowSeconds: 60 },
  'save-task.ip': { limit: 120, windowSeconds: 60 },
  // An answer resumes a run on its host.
  'answer-input.user': { limit: 60, windowSeconds: 60 },
  'answer-input.ip': { limit: 120, windowSeconds: 60 },
  // Creating and revoking API keys: a person does a few; a stolen session minting keys is slowed.
  'api-key.user': { limit: 20, windowSeconds: 60 },
  'api-key.ip': { limit: 40, windowSeconds: 60 },
  // Every JSON-RPC message to /mcp (tool calls, lists, initialize): an MCP client sends a few per turn.
  'mcp.user': { limit: 300, windowSeconds: 60 },
  // A running agent's run token (delegation): it has no user; its host shares an IP with its other runs.
  'mcp.run': { limit: 300, windowSeconds: 60 },
  'mcp.ip': { limit: 600, windowSeconds: 60 },
} as const satisfies Record<string, RateLimit>;

export type RateLimitRule = keyof typeof RATE_LIMIT_DEFAULTS;

/** Every rule; `null` is a rule switched off. */
export type RateLimits = Record<RateLimitRule, RateLimit | null>;

const WINDOW_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/** `RATE_LIMITS="execute.user=100/1m, register.ip=off"`: each entry replaces one default. */
export const rateLimitsSchema = setting.transform((value, ctx): RateLimits => {
  const limits: RateLimits = { ...RATE_LIMIT_DEFAULTS };
  for (const entry of (value ?? '').split(/[\s,]+/).filter(Boolean)) {
    const match = /^([a-z-]+\.[a-z]+)=(?:(off)|(\d{1,7})\/(\d{1,5})([smh]?))$/.exec(entry);
    const rule = match?.[1] as RateLimitRule | undefined;
    if (!match || !rule) {
      ctx.addIssue({
        code: 'custom',
        message: `"${entry}" must be <rule>=<count>/<window> (such as execute.user=60/1m, window in s, m or h) or <rule>=off`,
      });
      continue;
    }
    if (!(rule in RATE_LIMIT_DEFAULTS)) {
      ctx.addIssue({ code: 'custom', message: `unknown rule "${rule}"; the rules are ${Object.keys(RATE_LIMIT_DEFAULTS).join(', ')}` });
      continue;
    }
    if (match[2]) {
      limits[rule] = null;
      continue;
    }
    const limit = Number(match[3]);
    const windowSeconds = Number(match[4]) * WINDOW_UNITS[match[5] || 's']!;
    if (limit < 1 || windowSeconds < 1 || windowSeconds > 86_400) {
      ctx.addIssue({ code: 'custom', message: `"${entry}": the count must be at least 1 and the window from 1 s to 24 h` });
      continue;
    }
    limits[rule] = { limit, windowSeconds };
  }
  return limits;
});

/**
 * The login throttle (api/auth/throttle.ts): failures allowed within `windowSeconds`, per scope.
 * `perAccount` stays high, so that a stranger cannot lock an owner out: with the two limits
 * before it, locking an account everywhere takes at least perAccount / perAccountAndIp addresses.
 */
export interface LoginLimits {
  /** Failures for one email from one IP: the real guard against guessing a password. */
  perAccountAndIp: number;
  /** Failures from one IP, whatever the emails: slows a spray over many accounts. */
  perIp: number;
  /** Failures for one email from every IP together: a ceiling against guesses spread over many addresses. */
  perAccount: number;
  windowSeconds: number;
}

export const LOGIN_LIMIT_DEFAULTS: Readonly<LoginLimits> = Object.freeze({
  perAccountAndIp: 5,
  perIp: 20,
  perAccount: 100,
  windowSeconds: 15 * 60,
});

/** `LOGIN_LIMITS="perIp=50, window=30m"`: each entry replaces one default. */
export const loginLimitsSchema = setting.transform((value, ctx): LoginLimits => {
  const limits: LoginLimits = { ...LOGIN_LIMIT_DEFAULTS };
  for (const entry of (value ?? '').split(/[\s,]+/).filter(Boolean)) {
    const match = /^(perAccountAndIp|perIp|perAccount)=(\d{1,7})$|^window=(\d{1,5})([smh]?)$/.exec(entry);
    if (!match) {
      ctx.addIssue({
        code: 'custom',
        message: `"${entry}" must be perAccountAndIp=<count>, perIp=<count>, perAccount=<count> or window=<duration> (in s, m or h)`,
      });
      continue;
    }
    if (match[1]) {
      const count = Number(match[2]);
      if (count < 1) ctx.addIssue({ code: 'custom', message: `"${entry}": the count must be at least 1` });
      else limits[match[1] as 'perAccountAndIp' | 'perIp' | 'perAccount'] = count;
      continue;
    }
    const windowSeconds = Number(match[3]) * WINDOW_UNITS[match[4] || 's']!;
    if (windowSeconds < 1 || windowSeconds > 86_400)
      ctx.addIssue({ code: 'custom', message: `"${entry}": the window must be from 1 s to 24 h` });
    else limits.windowSeconds = windowSeconds;
  }
  return limits;
});
