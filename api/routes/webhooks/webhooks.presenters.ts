import type { Webhook } from '../../../entities';
import type { WebhookEventType } from '../../../domain/webhooks/event-types';

/** Never the secret: it leaves the process once, in the answer that made it (see the router). */
export function presentWebhook(webhook: Webhook) {
  return {
    id: webhook.id,
    url: webhook.url,
    events: webhook.events as WebhookEventType[],
    enabled: webhook.enabled,
    description: webhook.description ?? null,
    disabledReason: webhook.disabledReason ?? null,
    previousSecretExpiresAt:
      webhook.previousSecretExpiresAt && webhook.previousSecretExpiresAt > new Date()
        ? webhook.previousSecretExpiresAt.toISOString()
        : null,
    createdAt: webhook.createdAt.toISOString(),
    updatedAt: webhook.updatedAt.toISOString(),
  };
}
