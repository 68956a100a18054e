import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../../lib/config';

/**
 * What an API key looks like: `mcpf_` + the key's id (32 hex digits, the uuid without dashes)
 * + `_` + 256 random bits as 43 base64url characters. The id part makes the lookup one
 * primary-key read; the random part is the secret. The prefix makes a leaked key easy to
 * recognise (secret scanners, logs) and to tell apart from a JWT.
 */
export const API_KEY_PREFIX = 'mcpf_';
const API_KEY_FORMAT = /^mcpf_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;
/** `mcpf_` and the first 8 hex digits of the id: what lists show to recognise a key. */
const DISPLAY_PREFIX_LENGTH = API_KEY_PREFIX.length + 8;

export function isApiKeyToken(token: string): boolean {
  return token.startsWith(API_KEY_PREFIX);
}

/** The key id a well-formed key names, or undefined (then no lookup is made at all). */
export function apiKeyIdOf(token: string): string | undefined {
  const hex = API_KEY_FORMAT.exec(token)?.[1];
  return hex && `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const hashKeys = new Map<string, Buffer>();

/**
 * The HMAC key for API-key hashes, derived from JWT_REFRESH_SECRET with its own label so it
 * is not the refresh tokens' key. Keyed, like the refresh tokens: a copy of the table alone
 * cannot be checked against guessed keys.
 */
function hashKey(config: Pick<Config, 'auth'>): Buffer {
  let key = hashKeys.get(config.auth.refreshSecret);
  if (!key) {
    key = createHmac('sha256', config.auth.refreshSecret).update('mcp-fleet api-key hash v1').digest();
    hashKeys.set(config.auth.refreshSecret, key);
  }
  return key;
}

/**
 * HMAC-SHA256 of the whole key. A fast hash is right here, unlike for passwords: the secret
 * is 256 random bits, so there is nothing to guess that a slow hash (bcrypt) would slow down,
 * and a key is checked on every request it authenticates, where bcrypt's ~100-250 ms of CPU
 * per check would make each call slow and the API easy to exhaust.
 */
export function hashApiKey(config: Pick<Config, 'auth'>, token: string): string {
  return createHmac('sha256', hashKey(config)).update(token).digest('hex');
}

/** Compares in constant time, so the answer's timing says nothing of how much of the hash matched. */
export function apiKeyMatches(config: Pick<Config, 'auth'>, token: string, storedHash: string): boolean {
  const presented = Buffer.from(hashApiKey(config, token), 'hex');
  const stored = Buffer.from(storedHash, 'hex');
  return presented.length === stored.length && timingSafeEqual(presented, stored);
}

/** A new key for the row `id`: the key (shown once), its display prefix and its hash (stored). */
export function newApiKey(config: Pick<Config, 'auth'>, id: string): { token: string; prefix: string; hash: string } {
  const token = `${API_KEY_PREFIX}${id.replace(/-/g, '')}_${randomBytes(32).toString('base64url')}`;
  return { token, prefix: token.slice(0, DISPLAY_PREFIX_LENGTH), hash: hashApiKey(config, token) };
}
