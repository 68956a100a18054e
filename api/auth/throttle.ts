import type { EntityManager } from '@mikro-orm/postgresql';
import { LoginAttempt } from '../../entities';

export const LOGIN_WINDOW_MS = 15 * 60 * 1000;
export const LOGIN_MAX_FAILURES = 5;

/**
 * Sliding window over failed logins, per email and per IP, kept in PostgreSQL so every API
 * instance sees the same count. Returns the seconds to wait, or 0 when the login may proceed.
 */
export async function loginRetryAfterSeconds(em: EntityManager, email: string, ip: string, now = new Date()): Promise<number> {
  const since = new Date(now.getTime() - LOGIN_WINDOW_MS);
  const failures = await em.find(
    LoginAttempt,
    { succeeded: false, createdAt: { $gt: since }, $or: [{ email }, { ip }] },
    { fields: ['email', 'ip', 'createdAt'], orderBy: { createdAt: 'asc' } },
  );
  let waitMs = 0;
  for (const same of [failures.filter((f) => f.email === email), failures.filter((f) => f.ip === ip)]) {
    if (same.length < LOGIN_MAX_FAILURES) continue;
    // The block lifts when enough failures have left the window to go below the limit.
    const freeing = same[same.length - LOGIN_MAX_FAILURES]!;
    waitMs = Math.max(waitMs, freeing.createdAt.getTime() + LOGIN_WINDOW_MS - now.getTime());
  }
  return waitMs > 0 ? Math.ceil(waitMs / 1000) : 0;
}

export function recordLoginAttempt(em: EntityManager, email: string, ip: string, succeeded: boolean): void {
  em.create(LoginAttempt, { email, ip, succeeded });
}

/** Attempts older than the window no longer count: drop those of this email and IP (both indexed). */
export async function pruneLoginAttempts(em: EntityManager, email: string, ip: string, now = new Date()): Promise<void> {
  const before = new Date(now.getTime() - LOGIN_WINDOW_MS);
  await em.nativeDelete(LoginAttempt, { createdAt: { $lt: before }, $or: [{ email }, { ip }] });
}
