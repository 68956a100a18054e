import { mintRunToken, signatureMatches } from './run-token';

const config = { auth: { refreshSecret: 'a refresh secret for the run-token test' } } as Parameters<typeof mintRunToken>[0];
const run = {
  executionId: '0b6f3a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
  organizationId: '1b6f3a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
  agentId: '2b6f3a4e-1c2d-4e5f-8a9b-0c1d2e3f4a5b',
};
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

describe('run token signature', () => {
  const expiresAt = Date.now() + 60_000;
  // The last 43 characters: base64url has '_' among its own, so no split on it.
  const signature = mintRunToken(config, run, expiresAt).slice(-43);

  it('matches the token as minted, and not for other claims or another secret', () => {
    expect(signature).toHaveLength(43);
    expect(signatureMatches(config, run, expiresAt, signature)).toBe(true);
    expect(signatureMatches(config, { ...run, agentId: run.organizationId }, expiresAt, signature)).toBe(false);
    expect(signatureMatches(config, run, expiresAt + 1, signature)).toBe(false);
    expect(signatureMatches({ auth: { ...config.auth, refreshSecret: 'another' } }, run, expiresAt, signature)).toBe(false);
  });

  it('refuses every other last character, the 3 that decode to the same bytes included', () => {
    // The last character carries 4 bits of the MAC and 2 unused ones: the 3 characters that
    // differ only in those decode to the same 32 bytes (a comparison of bytes let them pass,
    // and a test that altered the last character failed 1 time in 16).
    const last = signature.at(-1)!;
    const index = ALPHABET.indexOf(last);
    const sameBytes = [0, 1, 2, 3].map((low) => ALPHABET[(index & ~3) | low]!).filter((c) => c !== last);
    expect(sameBytes).toHaveLength(3);
    for (const c of sameBytes) {
      expect(Buffer.from(signature.slice(0, -1) + c, 'base64url').equals(Buffer.from(signature, 'base64url'))).toBe(true);
    }
    for (const c of ALPHABET.replace(last, '')) expect(signatureMatches(config, run, expiresAt, signature.slice(0, -1) + c)).toBe(false);
  });
});
