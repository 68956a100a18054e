import { createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
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

const accessKeys = new Map<string, KeyObject>();

/**
 * The access-token secret as a KeyObject, made once. Handed a string, jsonwebtoken first tries
 * to read it as a PEM key (createPublicKey / createPrivateKey, which throws) before taking it
 * as an HMAC secret: about 1 ms of CPU on every request it authenticates.
 */
export function accessKey(config: Pick<Config, 'auth'>): KeyObject {
  let key = accessKeys.get(config.auth.accessSecret);
  if (!key) accessKeys.set(config.auth.accessSecret, (key = createSecretKey(Buffer.from(config.auth.accessSecret))));
  return key;
}

export function signAccessToken(config: Pick<Config, 'auth'>, claims: Omit<AccessClaims, 'typ'>): string {
  return jwt.sign({ ...claims, typ: 'access' }, accessKey(config), {
    algorithm: 'HS256',
    expiresIn: config.auth.accessTokenTtlSeconds,
    issuer: JWT_ISSUER,
    audience: JWT_AUDIENCE,
  });
}

/**
 * Opaque 256-bit refresh token. Only its HMAC-SHA256 under JWT_REFRESH_SECRET is stored, so a
 * copy of the sessions table alone cannot be checked against guessed tokens, and changing that
 * secret ends every refresh token at once.
 */
export function newRefreshToken(config: Pick<Config, 'auth'>): { token: string; hash: string } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashRefreshToken(config, token) };
}

export function hashRefreshToken(config: Pick<Config, 'auth'>, token: string): string {
  return createHmac('sha256', config.auth.refreshSecret).update(token).digest('hex');
}
