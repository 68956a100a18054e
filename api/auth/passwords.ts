import bcrypt from 'bcrypt';

export const PASSWORD_MIN_BYTES = 10;
/** bcrypt ignores every byte past 72: longer input is refused rather than silently truncated. */
export const PASSWORD_MAX_BYTES = 72;

export function hashPassword(password: string, cost: number): Promise<string> {
  return bcrypt.hash(password, cost);
}

export function verifyPassword(password: string, hash: string): Promise<boolean> {
  return bcrypt.compare(password, hash);
}

const dummyHashes = new Map<number, Promise<string>>();

/**
 * Unknown emails are compared against a dummy hash of the same cost, so a wrong email and a
 * wrong password take about the same time.
 */
export async function burnPasswordCheck(password: string, cost: number): Promise<false> {
  let dummy = dummyHashes.get(cost);
  if (!dummy) {
    dummy = bcrypt.hash('not-a-real-password-for-timing', cost);
    dummyHashes.set(cost, dummy);
  }
  await bcrypt.compare(password, await dummy);
  return false;
}
