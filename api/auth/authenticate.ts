import type { DefaultState, Middleware, ParameterizedContext } from 'koa';
import jwt from 'jsonwebtoken';
import koaJwt from 'koa-jwt';
import type { AppDeps } from '../deps';
import { AppError } from '../../domain/errors';
import { isDatabaseUnavailable } from '../../lib/database-unavailable';
import { UserRole } from '../../entities';
import type { SessionEndReason } from '../../domain/events';
import { defineAbilityFor, type AppAbility } from './abilities';
import { accessKey, JWT_ALGORITHMS, JWT_AUDIENCE, JWT_ISSUER, type AccessClaims } from './tokens';
import { isApiKeyToken } from '../../domain/api-keys/api-key-secret';
import { apiKeyEndReason, ApiKeyRejected, authenticateApiKey, type ApiKeyPrincipal } from './api-key-auth';

export interface AuthContext {
  userId: string;
  email: string;
  organizationId: string;
  /** The role the caller acts with: the user's current one; for an API key, the lower of the key's and its owner's. */
  role: UserRole;
  /** The session row of the access token; for an API key, the key's id. */
  sessionId: string;
  /** The login (session family) the access token belongs to: logout and reuse end all of it. For an API key, the key's id. */
  familyId: string;
  /** When the access token (or API key) expires (epoch ms): a socket or stream opened with it ends then. */
  tokenExpiresAt: number;
  ability: AppAbility;
  /** Set when the caller authenticated with an API key (`mcpf_…`) rather than an access token. */
  apiKey?: { id: string; name: string; prefix: string };
}

/** What authentication leaves on `ctx.state` (api/context.ts makes it part of every request's state). */
export interface AuthState extends DefaultState {
  /** Set when a valid, unrevoked access token came with the request. */
  auth?: AuthContext;
}

interface PrincipalRow {
  revoked_at: Date | null;
  family_id: string;
  user_id: string;
  email: string;
  organization_id: string;
  role: UserRole;
}

/** One primary-key lookup: the session (not revoked) joined to its user's current role. */
export async function loadPrincipalRow(deps: Pick<AppDeps, 'orm'>, claims: Partial<AccessClaims>): Promise<PrincipalRow | null> {
  // A token signed with our key but without access claims is invalid, not revoked.
  if (claims.typ !== 'access' || typeof claims.sid !== 'string' || !/^[0-9a-f-]{36}$/.test(claims.sid))
    throw new Error('not an access token');
  const rows = await deps.orm.em
    .getConnection()
    .execute<PrincipalRow[]>(
      'select s.revoked_at, s.family_id, u.id as user_id, u.email, u.organization_id, u.role from sessions s join users u on u.id = s.user_id where s.id = ?',
      [claims.sid],
    );
  const row = rows[0];
  return row && !row.revoked_at && row.user_id === claims.sub ? row : null;
}

function toAuthContext(row: PrincipalRow, claims: AccessClaims & { exp?: number }): AuthContext {
  const principal = { userId: row.user_id, organizationId: row.organization_id, role: row.role };
  const tokenExpiresAt = claims.exp === undefined ? Number.POSITIVE_INFINITY : claims.exp * 1000;
  return {
    ...principal,
    email: row.email,
    sessionId: claims.sid,
    familyId: row.family_id,
    tokenExpiresAt,
    ability: defineAbilityFor(principal),
  };
}

/**
 * Checks again, for a caller authenticated earlier (a socket, a stream), that its access
 * token, session and role still hold: the reason they no longer do, or undefined. One
 * primary-key lookup.
 */
export async function sessionEndReason(deps: Pick<AppDeps, 'orm'>, auth: AuthContext): Promise<SessionEndReason | undefined> {
  if (Date.now() >= auth.tokenExpiresAt) return 'token_expired';
  if (auth.apiKey) return apiKeyEndReason(deps, { keyId: auth.apiKey.id, role: auth.role, organizationId: auth.organizationId });
  const row = await loadPrincipalRow(deps, { typ: 'access', sid: auth.sessionId, sub: auth.userId });
  if (!row) return 'session_revoked';
  if (row.role !== auth.role || row.organization_id !== auth.organizationId) return 'role_changed';
  return undefined;
}

function apiKeyAuthContext(principal: ApiKeyPrincipal): AuthContext {
  const { keyId, name, prefix, userId, email, organizationId, role, expiresAt } = principal;
  return {
    userId,
    email,
    organizationId,
    role,
    sessionId: keyId,
    familyId: keyId,
    tokenExpiresAt: expiresAt,
    ability: defineAbilityFor({ userId, organizationId, role }),
    apiKey: { id: keyId, name, prefix },
  };
}

/**
 * The same checks as the HTTP middleware, for a bare token (Socket.IO handshakes, and later
 * `/mcp`): an access token (JWT) or an API key (`mcpf_…`, which throws `ApiKeyRejected`).
 */
export async function authenticateToken(deps: Pick<AppDeps, 'config' | 'orm'>, token: string): Promise<AuthContext> {
  if (isApiKeyToken(token)) return apiKeyAuthContext(await authenticateApiKey(deps, token));
  const claims = jwt.verify(token, accessKey(deps.config), {
    algorithms: JWT_ALGORITHMS,
    issuer: JWT_ISSUER,
    audience: JWT_AUDIENCE,
  }) as AccessClaims;
  const row = await loadPrincipalRow(deps, claims);
  if (!row) throw new Error('Token revoked');
  return toAuthContext(row, claims);
}

/**
 * koa-jwt verifies signature (HS256 only: `alg: none` and other algorithms are refused),
 * expiry, issuer and audience. Then one primary-key lookup (session ⋈ user) checks the session
 * was not logged out or revoked, and takes the user's *current* role and organisation, so a
 * role change or a deleted user applies on the next request.
 */
export function authenticate(deps: Pick<AppDeps, 'config' | 'orm'>): Middleware<AuthState>[] {
  const verify = koaJwt({
    // A KeyObject, which jsonwebtoken takes as it is (koa-jwt's types predate them).
    secret: accessKey(deps.config) as unknown as Buffer,
    algorithms: JWT_ALGORITHMS,
    issuer: JWT_ISSUER,
    audience: JWT_AUDIENCE,
    passthrough: true,
    key: 'jwt',
    isRevoked: async (ctx, decoded) => {
      const row = await loadPrincipalRow(deps, decoded as Partial<AccessClaims>);
      if (!row) return true;
      ctx.state.principalRow = row;
      return false;
    },
  }) as unknown as Middleware<AuthState>;

  const buildAbility: Middleware<AuthState> = async (ctx, next) => {
    // koa-jwt's passthrough keeps whatever isRevoked threw as the token's fault: a session that
    // could not be looked up (the database down) is no verdict on the token, and must not be a
    // 401 that sends clients to log in again, but the 503 the error handler makes of it.
    const lookupFailed = ctx.state.jwtOriginalError as unknown;
    if (isDatabaseUnavailable(lookupFailed)) throw lookupFailed;
    const row = ctx.state.principalRow as PrincipalRow | undefined;
    const claims = ctx.state.jwt as AccessClaims | undefined;
    if (row && claims) ctx.state.auth = toAuthContext(row, claims);
    await next();
  };
  // An API key is no JWT: it skips koa-jwt (whose error would be "invalid token") and is
  // looked up instead; a refused key is kept for requireAuth, to answer with its own code.
  const bearer = /^Bearer (mcpf_\S*)$/;
  const apiKeyOrJwt: Middleware<AuthState> = async (ctx, next) => {
    const apiKey = bearer.exec(ctx.get('authorization'))?.[1];
    if (!apiKey) return verify(ctx, () => buildAbility(ctx, next));
    try {
      ctx.state.auth = apiKeyAuthContext(await authenticateApiKey(deps, apiKey));
    } catch (error) {
      if (!(error instanceof ApiKeyRejected)) throw error;
      ctx.state.apiKeyRejected = error;
    }
    return next();
  };
  return [apiKeyOrJwt];
}

/** Thrown by routes that need a caller when there is none; says why in the code. */
export function requireAuth(ctx: ParameterizedContext<AuthState>): AuthContext {
  if (ctx.state.auth) return ctx.state.auth;
  const original = ctx.state.jwtOriginalError as Error | undefined;
  const headers = { 'WWW-Authenticate': 'Bearer' };
  const rejected = ctx.state.apiKeyRejected as ApiKeyRejected | undefined;
  if (rejected) throw new AppError(401, rejected.code, rejected.message, undefined, headers);
  if (!original || !ctx.get('authorization')) throw new AppError(401, 'unauthorized', 'Missing bearer token', undefined, headers);
  if (original.name === 'TokenExpiredError')
    throw new AppError(401, 'token_expired', 'The access token has expired; refresh it', undefined, headers);
  if (original.message === 'Token revoked')
    throw new AppError(401, 'token_revoked', 'The session of this access token has ended', undefined, headers);
  throw new AppError(401, 'invalid_token', 'The access token is not valid', undefined, headers);
}
