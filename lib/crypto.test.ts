import { randomBytes } from 'node:crypto';
import type { EncryptionKey } from './config';
import { lastFour, needsRotation, openSecret, SecretDecryptionError, sealSecret } from './crypto';

const makeKey = (id: string): EncryptionKey => ({ id, key: randomBytes(32) });
const k1 = makeKey('k1');
const k2 = makeKey('k2');
const CONTEXT = 'mcp_servers:0b7c2a1e:master_token';

/** Re-encodes one dot-separated part of a v1 ciphertext after changing its bytes. */
function tamper(ciphertext: string, index: 1 | 2 | 3, change: (bytes: Buffer) => Buffer): string {
  const parts = ciphertext.split('.');
  parts[index] = change(Buffer.from(parts[index]!, 'base64url')).toString('base64url');
  return parts.join('.');
}

const flipFirstBit = (bytes: Buffer) => {
  const copy = Buffer.from(bytes);
  copy[0]! ^= 0x01;
  return copy;
};

const BASE64URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** Sets an unused low bit in the tag's last character: Buffer.from decodes it to the same bytes. */
function nonCanonicalTag(ciphertext: string): string {
  const parts = ciphertext.split('.');
  const tag = parts[2]!;
  parts[2] = tag.slice(0, -1) + BASE64URL_ALPHABET[BASE64URL_ALPHABET.indexOf(tag.at(-1)!) ^ 1];
  expect(Buffer.from(parts[2], 'base64url')).toEqual(Buffer.from(tag, 'base64url'));
  return parts.join('.');
}

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected an error');
}

function decryptionError(run: () => unknown): SecretDecryptionError {
  const error = thrown(run);
  expect(error).toBeInstanceOf(SecretDecryptionError);
  return error as SecretDecryptionError;
}

describe('sealSecret / openSecret', () => {
  it.each([
    ['an ASCII token', 'mcp_live_3f9a8b7c6d5e4f3a2b1c'],
    ['unicode text', 'pässwörd-🔑-秘密-\u0000-end'],
    ['a long token', randomBytes(8192).toString('base64url')],
    ['an empty string', ''],
  ])('round-trips %s', (_name, plaintext) => {
    const sealed = sealSecret([k1], plaintext, CONTEXT);
    expect(sealed.keyId).toBe('k1');
    expect(sealed.ciphertext).toMatch(/^v1\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]*$/);
    expect(openSecret([k1], sealed, CONTEXT)).toBe(plaintext);
  });

  it('gives a different ciphertext on every seal', () => {
    const ciphertexts = new Set(Array.from({ length: 20 }, () => sealSecret([k1], 'same-token', CONTEXT).ciphertext));
    expect(ciphertexts.size).toBe(20);
  });

  it('does not leak the plaintext in any common encoding', () => {
    const plaintext = 'mcp_live_SUPERSECRET_token_value_1234';
    const { ciphertext } = sealSecret([k1], plaintext, CONTEXT);
    const bytes = Buffer.from(plaintext, 'utf8');
    for (const encoded of [plaintext, bytes.toString('base64'), bytes.toString('base64url'), bytes.toString('hex')]) {
      expect(ciphertext).not.toContain(encoded);
    }
  });

  it.each([
    ['another row', 'mcp_servers:ffffffff:master_token'],
    ['another column', 'mcp_servers:0b7c2a1e:other_token'],
  ])('refuses to open a ciphertext copied to %s', (_name, otherContext) => {
    const sealed = sealSecret([k1], 'token-value-123', CONTEXT);
    expect(() => openSecret([k1], sealed, otherContext)).toThrow(SecretDecryptionError);
    expect(() => openSecret([k1], sealed, otherContext)).toThrow('ciphertext does not match its key or context');
  });

  it('refuses a ciphertext sealed with a different key under the same id', () => {
    const sealed = sealSecret([k1], 'token-value-123', CONTEXT);
    expect(() => openSecret([makeKey('k1')], sealed, CONTEXT)).toThrow('ciphertext does not match its key or context');
  });

  it.each([
    ['iv', 1, flipFirstBit],
    ['tag', 2, flipFirstBit],
    ['data', 3, flipFirstBit],
    ['data (truncated)', 3, (b: Buffer) => b.subarray(0, b.length - 1)],
    ['data (extended)', 3, (b: Buffer) => Buffer.concat([b, Buffer.from([0])])],
  ] as const)('detects tampering with the %s', (_name, index, change) => {
    const sealed = sealSecret([k1], 'token-value-123', CONTEXT);
    const tampered = { ...sealed, ciphertext: tamper(sealed.ciphertext, index, change) };
    expect(tampered.ciphertext).not.toBe(sealed.ciphertext);
    expect(() => openSecret([k1], tampered, CONTEXT)).toThrow('ciphertext does not match its key or context');
  });

  it.each([
    ['another version', (c: string) => c.replace(/^v1\./, 'v2.')],
    ['no version', (c: string) => c.replace(/^v1\./, '')],
    ['an extra part', (c: string) => `${c}.AAAA`],
    ['standard base64 characters', (c: string) => `${c}+/`],
    ['padding', (c: string) => `${c}==`],
    ['whitespace', (c: string) => ` ${c}`],
    ['a short iv', (c: string) => tamper(c, 1, (b) => b.subarray(0, 8))],
    ['a short tag', (c: string) => tamper(c, 2, (b) => b.subarray(0, 12))],
    ['a non-canonical tag encoding', nonCanonicalTag],
    ['an empty string', () => ''],
  ])('rejects a ciphertext with %s', (_name, mangle) => {
    const sealed = sealSecret([k1], 'token-value-123', CONTEXT);
    const error = decryptionError(() => openSecret([k1], { ...sealed, ciphertext: mangle(sealed.ciphertext) }, CONTEXT));
    expect(error.message).toMatch(/not in v1 format|not valid base64url/);
  });

  it('names a missing key id and how to fix it', () => {
    const sealed = sealSecret([k1], 'token-value-123', CONTEXT);
    const error = decryptionError(() => openSecret([k2], sealed, CONTEXT));
    expect(error.message).toContain('key k1 is not in ENCRYPTION_KEYS; add it back to decrypt');
    expect(error.name).toBe('SecretDecryptionError');
  });

  it('never puts the plaintext or key material in error messages', () => {
    const plaintext = 'token-value-SENSITIVE';
    const sealed = sealSecret([k1], plaintext, CONTEXT);
    const errors = [
      decryptionError(() => openSecret([k2], sealed, CONTEXT)),
      decryptionError(() => openSecret([k1], sealed, 'elsewhere')),
      decryptionError(() => openSecret([k1], { ...sealed, ciphertext: 'v1.garbage' }, CONTEXT)),
    ];
    for (const { message } of errors) {
      expect(message).not.toContain(plaintext);
      for (const encoding of ['base64', 'base64url', 'hex'] as const) {
        expect(message).not.toContain(k1.key.toString(encoding));
      }
    }
  });

  it('throws a plain Error when the key ring is empty', () => {
    expect(() => sealSecret([], 'x', CONTEXT)).toThrow('key ring is empty');
    const error = thrown(() => openSecret([], sealSecret([k1], 'x', CONTEXT), CONTEXT));
    expect(error).toBeInstanceOf(Error);
    expect(error).not.toBeInstanceOf(SecretDecryptionError);
    expect(() => needsRotation([], 'k1')).toThrow('key ring is empty');
  });
});

describe('key rotation', () => {
  it('opens old secrets with an extended ring and re-seals them with the new key', () => {
    const old = sealSecret([k1], 'rotating-token', CONTEXT);
    expect(needsRotation([k1], old.keyId)).toBe(false);

    const ring = [k2, k1];
    expect(openSecret(ring, old, CONTEXT)).toBe('rotating-token');
    expect(needsRotation(ring, old.keyId)).toBe(true);

    const resealed = sealSecret(ring, openSecret(ring, old, CONTEXT), CONTEXT);
    expect(resealed.keyId).toBe('k2');
    expect(needsRotation(ring, resealed.keyId)).toBe(false);

    // Once everything is re-sealed, k1 can be retired.
    expect(openSecret([k2], resealed, CONTEXT)).toBe('rotating-token');
    expect(() => openSecret([k2], old, CONTEXT)).toThrow('key k1 is not in ENCRYPTION_KEYS');
  });
});

describe('lastFour', () => {
  it.each([
    ['', ''],
    ['abc', ''],
    ['1234567', ''],
    ['12345678', '5678'],
    ['mcp_live_3f9a8b7c6d5e4f3a2b1c', '2b1c'],
    ['secret-🔑🔑🔑🔑', '🔑🔑🔑🔑'],
  ])('lastFour(%j) is %j', (secret, expected) => {
    expect(lastFour(secret)).toBe(expected);
  });
});
