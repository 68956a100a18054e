/**
 * The secrets part of the configuration (lib/config.ts): the JWT secrets' and the encryption key
 * ring's schemas, the placeholder check production runs on the JWT secrets, and the random
 * secrets a dev or test machine generates once and keeps under its data dir.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const PLACEHOLDER_SECRETS = new Set(['secret', 'changeme', 'change-me', 'please-change-me', 'dev', 'development', 'test']);

const encryptionKeySchema = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,32}:[A-Za-z0-9+/]+={0,2}$/, 'each entry must be keyId:base64key')
  .transform((entry, ctx) => {
    const [id, b64] = entry.split(':') as [string, string];
    const key = Buffer.from(b64, 'base64');
    if (key.length !== 32) {
      ctx.addIssue({ code: 'custom', message: `key "${id}" must decode to 32 bytes (got ${key.length})` });
      return z.NEVER;
    }
    return { id, key };
  });

/** A JWT secret: long enough that guessing it is out of reach. */
export const secretSchema = z.string().min(32, 'must be at least 32 characters');

/** ENCRYPTION_KEYS once trimmed: comma-separated keyId:base64key entries, at least one, each a 32-byte key. */
export const encryptionKeysSchema = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((part) => part.trim())
      .filter(Boolean),
  )
  .pipe(z.array(encryptionKeySchema).min(1))
  .optional();

/** The JWT secrets that look like placeholders (a known word, or fewer than 8 distinct characters), one problem each. */
export function placeholderSecretProblems(secrets: ReadonlyArray<readonly [name: string, value: string | undefined]>): string[] {
  const problems: string[] = [];
  for (const [name, value] of secrets) {
    if (value && (PLACEHOLDER_SECRETS.has(value.toLowerCase()) || new Set(value).size < 8)) {
      problems.push(`${name} looks like a placeholder; use a random value (openssl rand -base64 48)`);
    }
  }
  return problems;
}

/** The secrets a dev or test machine generates for itself, as the variables would give them. */
export interface DevSecrets {
  JWT_ACCESS_SECRET: string;
  JWT_REFRESH_SECRET: string;
  ENCRYPTION_KEYS: string;
}

/** Dev and test machines get real random secrets, generated once and kept under the data dir. */
export function loadOrCreateDevSecrets(dataDir: string): DevSecrets {
  const file = path.join(dataDir, 'secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as DevSecrets;
  const secrets: DevSecrets = {
    JWT_ACCESS_SECRET: randomBytes(48).toString('base64url'),
    JWT_REFRESH_SECRET: randomBytes(48).toString('base64url'),
    ENCRYPTION_KEYS: `dev1:${randomBytes(32).toString('base64')}`,
  };
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(file, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}
