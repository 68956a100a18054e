import type { EntityManager } from '@mikro-orm/postgresql';
import { Organization, User, Webhook } from '../../entities';
import type { Config } from '../../lib/config';
import { openSecret, sealSecret } from '../../lib/crypto';
import { checkUrlSyntax, UnsafeUrlError } from '../../lib/ssrf';
import { urlPolicy } from '../../lib/url-policy';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { fieldError } from '../errors';
import { generateWebhookSecret, PREVIOUS_SECRET_GRACE_MS, webhookSecretContext } from './webhook-secret';

/**
 * What changes a webhook endpoint. Each command writes through `em` and flushes; authorisation
 * is the caller's, on the rows it loaded. Secrets are never audited, only that they changed.
 */

/** The key ring that seals signing secrets and the URL policy endpoints follow (the servers' one). */
export type WebhookSettings = Pick<Config, 'encryptionKeys' | 'isProduction' | 'mcp'>;

export interface NewWebhook {
  url: string;
  events: string[];
  enabled?: boolean;
  description?: string;
}

export interface WebhookChanges {
  url?: string;
  events?: string[];
  enabled?: boolean;
  /** null: no description any more. */
  description?: string | null;
}

/** The URL as it will be stored, or a field-level 400 when the servers' URL policy refuses its form. */
function acceptedUrl(settings: WebhookSettings, raw: string): string {
  try {
    return checkUrlSyntax(raw, urlPolicy(settings)).toString();
  } catch (error) {
    if (error instanceof UnsafeUrlError) throw fieldError('body.url', error.message, error.reason);
    throw error;
  }
}

function sealCurrent(settings: WebhookSettings, webhook: Webhook, secret: string): void {
  const sealed = sealSecret(settings.encryptionKeys, secret, webhookSecretContext(webhook.id));
  webhook.secretCiphertext = sealed.ciphertext;
  webhook.secretKeyId = sealed.keyId;
}

/** Registers an endpoint; the answer's `secret` is the only time the plaintext leaves the process. */
export async function createWebhook(
  em: EntityManager,
  settings: WebhookSettings,
  actor: Actor,
  input: NewWebhook,
): Promise<{ webhook: Webhook; secret: string }> {
  const url = acceptedUrl(settings, input.url);
  const webhook = em.create(Webhook, {
    organization: em.getReference(Organization, actor.organizationId),
    url,
    events: [...new Set(input.events)],
    enabled: input.enabled ?? true,
    description: input.description,
    secretCiphertext: '',
    secretKeyId: '',
    createdBy: actor.userId ? em.getReference(User, actor.userId) : undefined,
  });
  const secret = generateWebhookSecret();
  sealCurrent(settings, webhook, secret);
  audit(em, actor, {
    action: 'webhook.create',
    resourceType: 'webhook',
    resourceId: webhook.id,
    changes: { url, events: webhook.events, enabled: webhook.enabled },
  });
  await em.flush();
  return { webhook, secret };
}

/**
 * Changes an endpoint. Runs in the caller's transaction, so a caller may still check its
 * permission on the result and roll the change back. Enabling it again clears why the fleet
 * had disabled it.
 */
export async function updateWebhook(
  tx: EntityManager,
  settings: WebhookSettings,
  actor: Actor,
  webhook: Webhook,
  input: WebhookChanges,
): Promise<Webhook> {
  const changes: Record<string, unknown> = {};
  if (input.url !== undefined) {
    const url = acceptedUrl(settings, input.url);
    if (url !== webhook.url) {
      changes.url = { from: webhook.url, to: url };
      webhook.url = url;
    }
  }
  if (input.events !== undefined) {
    const events = [...new Set(input.events)];
    if (events.join() !== webhook.events.join()) {
      changes.events = { from: webhook.events, to: events };
      webhook.events = events;
    }
  }
  if (input.enabled !== undefined && input.enabled !== webhook.enabled) {
    changes.enabled = { from: webhook.enabled, to: input.enabled };
    webhook.enabled = input.enabled;
    if (input.enabled) webhook.disabledReason = undefined;
  }
  if (input.description === null && webhook.description !== undefined) {
    changes.description = { from: webhook.description, to: null };
    webhook.description = undefined;
  } else if (input.description && input.description !== webhook.description) {
    changes.description = { from: webhook.description ?? null, to: input.description };
    webhook.description = input.description;
  }
  if (Object.keys(changes).length) audit(tx, actor, { action: 'webhook.update', resourceType: 'webhook', resourceId: webhook.id, changes });
  await tx.flush();
  return webhook;
}

export async function deleteWebhook(tx: EntityManager, actor: Actor, webhook: Webhook): Promise<void> {
  audit(tx, actor, { action: 'webhook.delete', resourceType: 'webhook', resourceId: webhook.id, changes: { url: webhook.url } });
  tx.remove(webhook);
  await tx.flush();
}

/**
 * A new signing secret; the one it replaces keeps signing beside it for a day, so a receiver
 * that still checks the old one loses nothing while it switches. A second rotation within that
 * day drops the oldest: only the secret in use just before stays valid.
 */
export async function rotateWebhookSecret(
  tx: EntityManager,
  settings: WebhookSettings,
  actor: Actor,
  webhook: Webhook,
  now = new Date(),
): Promise<{ webhook: Webhook; secret: string }> {
  await tx.populate(webhook, ['secretCiphertext']);
  webhook.previousSecretCiphertext = webhook.secretCiphertext;
  webhook.previousSecretKeyId = webhook.secretKeyId;
  webhook.previousSecretExpiresAt = new Date(now.getTime() + PREVIOUS_SECRET_GRACE_MS);
  const secret = generateWebhookSecret();
  sealCurrent(settings, webhook, secret);
  audit(tx, actor, {
    action: 'webhook.rotate_secret',
    resourceType: 'webhook',
    resourceId: webhook.id,
    changes: { secret: { rotated: true }, previousValidUntil: webhook.previousSecretExpiresAt.toISOString() },
  });
  await tx.flush();
  return { webhook, secret };
}

/** The secrets that sign a message sent at `now`: the current one, and the previous one until it expires. */
export async function signingSecrets(
  em: EntityManager,
  settings: Pick<Config, 'encryptionKeys'>,
  webhook: Webhook,
  now = new Date(),
): Promise<string[]> {
  await em.populate(webhook, ['secretCiphertext', 'previousSecretCiphertext']);
  const context = webhookSecretContext(webhook.id);
  const secrets = [openSecret(settings.encryptionKeys, { keyId: webhook.secretKeyId, ciphertext: webhook.secretCiphertext }, context)];
  if (
    webhook.previousSecretCiphertext &&
    webhook.previousSecretKeyId &&
    webhook.previousSecretExpiresAt &&
    webhook.previousSecretExpiresAt > now
  ) {
    secrets.push(
      openSecret(settings.encryptionKeys, { keyId: webhook.previousSecretKeyId, ciphertext: webhook.previousSecretCiphertext }, context),
    );
  }
  return secrets;
}
