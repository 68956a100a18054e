import { createHash, randomBytes } from 'node:crypto';
import jwt from 'jsonwebtoken';
import type { Config } from '../../lib/config';
import type { UserRole } from '../../entities';

export const JWT_ISSUER = 'mcp-fleet';
export const JWT_AUDIENCE = 'mcp-fleet-api';
export const JWT_ALGORITHMS: jwt.Algorithm[] = ['HS256'];

export interface AccessClaims {
  sub: string;
  org: string;
  role: UserRole;
  /** Session row id: logout revokes it (and its family), and the token stops working at once. */
  sid: string;
  typ: 'access';
}

export function signAccessToken(config: Pick<Config, 'auth'>, claims: Omit<AccessClaims, 'typ'>): string {
  return jwt.sign({ ...claims, typ: 'access' }, config.auth.accessSecret, {
    algorithm: 'HS256',
    expiresIn: config.auth.accessTokenTtlSeconds,
    issuer: JWT_ISSUER,
    audience: JWT_AUDIENCE,
  });
}

/** Opaque 256-bit refresh token; only its SHA-256 is stored. */
export function newRefreshToken(): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashRefreshToken(token) };
}

export function hashRefreshToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
