import type { Webhook, WebhookDelivery } from '../../../entities';
import { webhookMessageId } from '../../../workflows/contracts/webhook-delivery';
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

export function presentDelivery(delivery: WebhookDelivery) {
  return {
    id: delivery.id,
    messageId: webhookMessageId(delivery.id),
    webhookId: delivery.webhook.id,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    status: delivery.status,
    attempts: delivery.attempts,
    lastResponseCode: delivery.lastResponseCode ?? null,
    lastAttemptAt: delivery.lastAttemptAt?.toISOString() ?? null,
    lastError: delivery.lastError ?? null,
    nextAttemptAt: delivery.nextAttemptAt?.toISOString() ?? null,
    deliveredAt: delivery.deliveredAt?.toISOString() ?? null,
    payload: delivery.payload,
    createdAt: delivery.createdAt.toISOString(),
  };
}
