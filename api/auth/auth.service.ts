import { randomBytes, randomUUID } from 'node:crypto';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { Config } from '../../lib/config';
import { Organization, Session, User, UserRole } from '../../entities';
import { recordAudit } from '../../domain/audit';
import { publishEvent } from '../../domain/events';
import { AppError } from '../../domain/errors';
import { burnPasswordCheck, hashPassword, verifyPassword } from './passwords';
import { hashRefreshToken, newRefreshToken, signAccessToken } from './tokens';
import { beginLoginAttempt, settleLoginAttempt } from './throttle';

export interface RequestMeta {
  ip: string;
  requestId: string;
  userAgent?: string;
}

export interface IssuedTokens {
  accessToken: string;
  refreshToken: string;
  expiresIn: number;
}

export interface AuthResult extends IssuedTokens {
  user: User;
  organization: Organization;
}

type AuthConfig = Pick<Config, 'auth'>;

export function slugify(name: string): string {
  const slug = name
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 60)
    .replace(/-+$/, '');
  return slug || 'org';
}

async function freeSlug(em: EntityManager, name: string): Promise<string> {
  const base = slugify(name);
  const taken = new Set(
    (await em.find(Organization, { $or: [{ slug: base }, { slug: { $like: `${base}-%` } }] }, { fields: ['slug'] })).map((o) => o.slug),
  );
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

/** Creates one session row (one refresh token) in a family and signs its access token. */
/** `user` must be managed by `em` (loaded or created there). */
function issueSession(
  em: EntityManager,
  config: AuthConfig,
  user: User,
  meta: RequestMeta,
  familyId: string = randomUUID(),
): { session: Session; tokens: IssuedTokens } {
  const refresh = newRefreshToken(config);
  const session = em.create(Session, {
    user,
    organization: user.organization,
    refreshTokenHash: refresh.hash,
    familyId,
    expiresAt: new Date(Date.now() + config.auth.refreshTokenTtlSeconds * 1000),
    userAgent: meta.userAgent,
    ip: meta.ip,
  });
  const accessToken = signAccessToken(config, { sub: user.id, org: user.organization.id, role: user.role, sid: session.id });
  return { session, tokens: { accessToken, refreshToken: refresh.token, expiresIn: config.auth.accessTokenTtlSeconds } };
}

function isEmailConflict(error: unknown): boolean {
  return error instanceof UniqueConstraintViolationException && /users_email_unique/.test(error.message);
}

export async function register(
  em: EntityManager,
  config: AuthConfig,
  input: { email: string; password: string; name: string; organizationName: string },
  meta: RequestMeta,
): Promise<AuthResult> {
  if (await em.count(User, { email: input.email })) throw AppError.conflict('email_taken', 'An account with this email already exists');
  const passwordHash = await hashPassword(input.password, config.auth.bcryptCost);
  for (let attempt = 0; ; attempt++) {
    const fork = em.fork();
    try {
      return await fork.transactional(async (tx) => {
        const slug =
          attempt === 0
            ? await freeSlug(tx, input.organizationName)
            : `${slugify(input.organizationName)}-${randomBytes(3).toString('hex')}`;
        const organization = tx.create(Organization, { name: input.organizationName, slug });
        const user = tx.create(User, {
          organization,
          email: input.email,
          name: input.name,
          role: UserRole.ADMIN,
          passwordHash,
          lastLoginAt: new Date(),
        });
        const { tokens } = issueSession(tx, config, user, meta);
        recordAudit(tx, {
          organizationId: organization.id,
          actorId: user.id,
          actorEmail: user.email,
          action: 'auth.register',
          resourceType: 'user',
          resourceId: user.id,
          changes: { email: user.email, role: user.role, organization: { id: organization.id, slug } },
          ip: meta.ip,
          requestId: meta.requestId,
        });
        await tx.flush();
        return { user, organization, ...tokens };
      });
    } catch (error) {
      if (isEmailConflict(error)) throw AppError.conflict('email_taken', 'An account with this email already exists');
      // Two registrations raced for the same slug: retry once with a random suffix.
      if (error instanceof UniqueConstraintViolationException && attempt === 0) continue;
      throw error;
    }
  }
}

export async function login(
  em: EntityManager,
  config: AuthConfig,
  input: { email: string; password: string },
  meta: RequestMeta,
): Promise<AuthResult> {
  const attempt = await beginLoginAttempt(em, input.email, meta.ip, config.auth.loginLimits);
  if ('retryAfter' in attempt) {
    const { retryAfter } = attempt;
    throw new AppError(
      429,
      'too_many_attempts',
      `Too many failed logins; try again in ${retryAfter} s`,
      { retryAfter },
      { 'Retry-After': String(retryAfter) },
    );
  }
  const user = await em.findOne(User, { email: input.email }, { populate: ['passwordHash', 'organization'] });
  const ok = user
    ? await verifyPassword(input.password, user.passwordHash)
    : await burnPasswordCheck(input.password, config.auth.bcryptCost);
  if (!user || !ok) {
    if (user) {
      recordAudit(em, {
        organizationId: user.organization.id,
        actorId: user.id,
        actorEmail: user.email,
        action: 'auth.login_failed',
        resourceType: 'user',
        resourceId: user.id,
        ip: meta.ip,
        requestId: meta.requestId,
      });
    }
    await em.flush();
    throw new AppError(401, 'invalid_credentials', 'Email or password is incorrect');
  }
  await settleLoginAttempt(em, attempt.attemptId);
  user.lastLoginAt = new Date();
  const { tokens } = issueSession(em, config, user, meta);
  recordAudit(em, {
    organizationId: user.organization.id,
    actorId: user.id,
    actorEmail: user.email,
    action: 'auth.login',
    resourceType: 'user',
    resourceId: user.id,
    ip: meta.ip,
    requestId: meta.requestId,
  });
  await em.flush();
  return { user, organization: user.organization, ...tokens };
}

/**
 * Ends every session of the family (one login and all its rotations), then tells every API
 * instance, so that the sockets and streams opened with its access tokens close at once.
 */
async function revokeFamily(em: EntityManager, session: Session, reason: 'logout' | 'refresh_reused'): Promise<number> {
  const revoked = await em.nativeUpdate(Session, { familyId: session.familyId, revokedAt: null }, { revokedAt: new Date() });
  if (revoked > 0)
    await publishEvent(em, { type: 'session:ended', organizationId: session.organization.id, familyId: session.familyId, reason });
  return revoked;
}

export async function refresh(em: EntityManager, config: AuthConfig, refreshToken: string, meta: RequestMeta): Promise<AuthResult> {
  const session = await em.findOne(
    Session,
    { refreshTokenHash: hashRefreshToken(config, refreshToken) },
    { populate: ['user', 'user.organization'] },
  );
  if (!session) throw new AppError(401, 'invalid_refresh_token', 'The refresh token is not valid');

  const reuse = async () => {
    await revokeFamily(em, session, 'refresh_reused');
    recordAudit(em, {
      organizationId: session.organization.id,
      actorId: session.user.id,
      actorEmail: session.user.email,
      action: 'auth.refresh_reused',
      resourceType: 'session',
      resourceId: session.familyId,
      changes: { presentedSession: session.id },
      ip: meta.ip,
      requestId: meta.requestId,
    });
    await em.flush();
    return new AppError(401, 'refresh_reused', 'This refresh token was already used; every session of this login has been revoked');
  };

  if (session.replacedBy) throw await reuse();
  if (session.revokedAt) throw new AppError(401, 'session_revoked', 'This session has ended; log in again');
  if (session.expiresAt.getTime() <= Date.now()) throw new AppError(401, 'refresh_expired', 'The refresh token has expired; log in again');

  const next = issueSession(em, config, session.user, meta, session.familyId);
  await em.flush();
  // Only one caller may spend a token: a concurrent refresh with the same token loses here, and
  // the family (the row just created included) is revoked as a reuse.
  const spent = await em.nativeUpdate(
    Session,
    { id: session.id, replacedBy: null, revokedAt: null },
    { replacedBy: next.session.id, lastUsedAt: new Date() },
  );
  if (spent !== 1) throw await reuse();
  return { user: session.user, organization: session.user.organization, ...next.tokens };
}

export async function logout(em: EntityManager, config: AuthConfig, refreshToken: string, meta: RequestMeta): Promise<void> {
  const session = await em.findOne(Session, { refreshTokenHash: hashRefreshToken(config, refreshToken) }, { populate: ['user'] });
  if (!session) return;
  const revoked = await revokeFamily(em, session, 'logout');
  if (revoked > 0) {
    recordAudit(em, {
      organizationId: session.organization.id,
      actorId: session.user.id,
      actorEmail: session.user.email,
      action: 'auth.logout',
      resourceType: 'session',
      resourceId: session.familyId,
      ip: meta.ip,
      requestId: meta.requestId,
    });
    await em.flush();
  }
}
