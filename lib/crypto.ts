import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { EncryptionKey } from './config';

/** A secret at rest: stored as `masterTokenKeyId` + `masterTokenCiphertext`. */
export interface SealedSecret {
  keyId: string;
  ciphertext: string;
}

/** Messages name the key id and context only, never plaintext or key bytes. */
export class SecretDecryptionError extends Error {
  override name = 'SecretDecryptionError';
}

const ALGORITHM = 'aes-256-gcm';
const VERSION = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

function currentKey(keys: readonly EncryptionKey[]): EncryptionKey {
  const key = keys[0];
  if (!key) throw new Error('encryption key ring is empty; set ENCRYPTION_KEYS');
  return key;
}

// AAD binds the ciphertext to its row and column, so a copied value cannot be opened elsewhere.
function aad(context: string): Buffer {
  if (context === '') throw new Error('encryption context must not be empty');
  return Buffer.from(context, 'utf8');
}

export function sealSecret(keys: readonly EncryptionKey[], plaintext: string, context: string): SealedSecret {
  const { id, key } = currentKey(keys);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(context));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const parts = [iv, cipher.getAuthTag(), data].map((b) => b.toString('base64url'));
  return { keyId: id, ciphertext: [VERSION, ...parts].join('.') };
}

export function openSecret(keys: readonly EncryptionKey[], sealed: SealedSecret, context: string): string {
  currentKey(keys);
  const additionalData = aad(context);
  const fail = (reason: string) => new SecretDecryptionError(`cannot open secret for ${context}: ${reason}`);

  const key = keys.find((k) => k.id === sealed.keyId);
  if (!key) throw fail(`key ${sealed.keyId} is not in ENCRYPTION_KEYS; add it back to decrypt`);

  const { iv, tag, data } = parse(sealed.ciphertext, fail);
  const decipher = createDecipheriv(ALGORITHM, key.key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(additionalData);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(data), decipher.final()]).toString('utf8');
  } catch {
    throw fail('ciphertext does not match its key or context');
  }
}

function parse(ciphertext: string, fail: (reason: string) => SecretDecryptionError): { iv: Buffer; tag: Buffer; data: Buffer } {
  const parts = ciphertext.split('.');
  if (parts.length !== 4 || parts[0] !== VERSION) throw fail(`ciphertext is not in ${VERSION} format`);
  const [iv, tag, data] = parts.slice(1).map((part) => {
    const bytes = Buffer.from(part, 'base64url');
    // Buffer.from silently skips bad characters and stray bits; only the canonical encoding is accepted.
    if (!BASE64URL.test(part) || bytes.toString('base64url') !== part) throw fail('ciphertext is not valid base64url');
    return bytes;
  }) as [Buffer, Buffer, Buffer];
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw fail(`ciphertext is not in ${VERSION} format`);
  return { iv, tag, data };
}

/** True when the secret was sealed with an older key and should be re-sealed with the current one. */
export function needsRotation(keys: readonly EncryptionKey[], keyId: string): boolean {
  return currentKey(keys).id !== keyId;
}

/** The last four characters, for display; secrets under 8 characters would be half revealed, so they get ''. */
export function lastFour(secret: string): string {
  const chars = Array.from(secret); // code points, so a surrogate pair is never split
  return chars.length < 8 ? '' : chars.slice(-4).join('');
}
