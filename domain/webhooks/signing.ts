import { createHmac } from 'node:crypto';
import { SECRET_PREFIX } from './webhook-secret';

/**
 * Standard Webhooks signing (github.com/standard-webhooks/standard-webhooks, spec/): the
 * signed content is `id.timestamp.body`, the key the base64 after `whsec_`, the signature
 * `v1,<base64 HMAC-SHA256>`. Several secrets (during a rotation) give several signatures,
 * space-separated; a receiver accepts the message when any one verifies.
 */

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

function signatureWith(secret: string, content: string): string {
  if (!secret.startsWith(SECRET_PREFIX)) throw new Error('webhook secret must start with whsec_');
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  return `v1,${createHmac('sha256', key).update(content, 'utf8').digest('base64')}`;
}

/** The three headers for `body` sent as message `id` at `at`, signed with every secret given. */
export function signWebhook(secrets: readonly string[], id: string, at: Date, body: string): SignedHeaders {
  if (!secrets.length) throw new Error('at least one webhook secret is needed to sign');
  const timestamp = String(Math.floor(at.getTime() / 1000));
  const content = `${id}.${timestamp}.${body}`;
  return {
    'webhook-id': id,
    'webhook-timestamp': timestamp,
    'webhook-signature': secrets.map((s) => signatureWith(s, content)).join(' '),
  };
}
