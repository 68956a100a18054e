import type { EntityManager } from '@mikro-orm/postgresql';
import { LoginAttempt } from '../../entities';
import type { LoginLimits } from '../../lib/request-limits';

export type LoginAttemptStart = { attemptId: string } | { retryAfter: number };

interface Failure {
  email: string;
  ip: string;
  createdAt: Date;
}

/** Seconds until the attempt may proceed (0: now), from the window's failures (oldest first), under `limits` (config.auth.loginLimits). */
function retryAfterSeconds(failures: Failure[], email: string, ip: string, limits: LoginLimits, now: Date): number {
  const scopes: Array<[Failure[], number]> = [
    [failures.filter((f) => f.email === email && f.ip === ip), limits.perAccountAndIp],
    [failures.filter((f) => f.ip === ip), limits.perIp],
    [failures.filter((f) => f.email === email), limits.perAccount],
  ];
  let waitMs = 0;
  for (const [same, limit] of scopes) {
    if (same.length < limit) continue;
    // The block lifts when enough failures have left the window to go below the limit.
    const freeing = same[same.length - limit]!;
    waitMs = Math.max(waitMs, freeing.createdAt.getTime() + limits.windowSeconds * 1000 - now.getTime());
  }
  return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
}

/**
 * Counts the failures of the sliding window and records this attempt in one transaction, kept
 * in PostgreSQL so that every API instance shares the counts. Attempts that share the email or
 * the IP go one at a time (advisory locks, taken in one order), and the attempt is stored as a
 * failure *before* the password is checked: parallel attempts count each other, so 30 at once
 * get no more guesses than 30 in a row. `settleLoginAttempt` turns it into a success. A blocked
 * attempt is not stored.
 */
export async function beginLoginAttempt(em: EntityManager, email: string, ip: string, limits: LoginLimits): Promise<LoginAttemptStart> {
  return em.fork().transactional(async (tx) => {
    await tx.execute(
      'select pg_advisory_xact_lock(k) from (select distinct hashtextextended(x, 0) as k from unnest(array[?, ?]::text[]) as x order by k) as keys',
      [`login-email:${email}`, `login-ip:${ip}`],
    );
    const now = new Date();
    const since = new Date(now.getTime() - limits.windowSeconds * 1000);
    // Attempts older than the window no longer count: drop those of this email and IP (both indexed).
    await tx.nativeDelete(LoginAttempt, { createdAt: { $lte: since }, $or: [{ email }, { ip }] });
    const failures = await tx.find(
      LoginAttempt,
      { succeeded: false, createdAt: { $gt: since }, $or: [{ email }, { ip }] },
      { fields: ['email', 'ip', 'createdAt'], orderBy: { createdAt: 'asc' } },
    );
    const retryAfter = retryAfterSeconds(failures, email, ip, limits, now);
    if (retryAfter > 0) return { retryAfter };
    const attempt = tx.create(LoginAttempt, { email, ip, succeeded: false, createdAt: now });
    return { attemptId: attempt.id };
  });
}

/** The password was right: the attempt no longer counts as a failure. */
export async function settleLoginAttempt(em: EntityManager, attemptId: string): Promise<void> {
  await em.nativeUpdate(LoginAttempt, { id: attemptId }, { succeeded: true });
}
