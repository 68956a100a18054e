/**
 * The contract of `webhookDelivery` (workflows/webhook-delivery.workflow.ts): one workflow per
 * delivery row, shared by the workflow, its activity, the API and the worker's outbox; it
 * imports nothing of the project.
 */

export const WEBHOOK_DELIVERY_WORKFLOW = 'webhookDelivery';

/** Keyed by the delivery row, itself one per (endpoint, event): a second start for one event is refused. */
export function webhookDeliveryWorkflowId(deliveryId: string): string {
  return `webhook-delivery-${deliveryId}`;
}

/** The `webhook-id` header: the same for every attempt and redelivery of the row, so receivers dedupe on it. */
export function webhookMessageId(deliveryId: string): string {
  return `msg_${deliveryId}`;
}

/**
 * The waits after each failed attempt, modelled on Svix's schedule: quick retries for a blip,
 * then hours apart; the last attempt is about a day after the first. A `Retry-After` from the
 * receiver replaces the wait it falls on (within MAX_RETRY_AFTER_MS).
 */
export const WEBHOOK_RETRY_DELAYS_MS: readonly number[] = [
  5_000,
  30_000,
  2 * 60_000,
  10 * 60_000,
  30 * 60_000,
  60 * 60_000,
  2 * 3600_000,
  4 * 3600_000,
  8 * 3600_000,
  8 * 3600_000,
];

/** A receiver cannot park a delivery for longer than this with Retry-After. */
export const MAX_RETRY_AFTER_MS = 3600_000;

/** Each attempt's whole request, connection to last byte. */
export const WEBHOOK_ATTEMPT_TIMEOUT_MS = 10_000;

export interface WebhookDeliveryInput {
  deliveryId: string;
}

/** What one attempt decided: done (either way), or try again after `retryInMs`. */
export type WebhookAttemptOutcome =
  { outcome: 'delivered' | 'failed' | 'gone'; attempts: number } | { outcome: 'retry'; attempts: number; retryInMs: number };

export type WebhookDeliveryResult = { outcome: 'delivered' | 'failed' | 'gone'; attempts: number };

export type WebhookDeliveryWorkflow = (input: WebhookDeliveryInput) => Promise<WebhookDeliveryResult>;
