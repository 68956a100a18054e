import { randomBytes } from 'node:crypto';

/** Standard Webhooks' prefix: receivers strip it and base64-decode the rest into the HMAC key. */
export const SECRET_PREFIX = 'whsec_';

/** 32 random bytes, as the spec suggests (between 24 and 64). */
const SECRET_BYTES = 32;

/** How long the secret before a rotation keeps signing beside the new one. */
export const PREVIOUS_SECRET_GRACE_MS = 24 * 60 * 60 * 1000;

export function generateWebhookSecret(): string {
  return SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');
}

/**
 * AAD for a webhook's signing secrets: a ciphertext copied to another row does not open. The
 * current and the previous secret share it, so a rotation moves the sealed value as it is.
 */
export function webhookSecretContext(webhookId: string): string {
  return `webhooks:${webhookId}:secret`;
}
