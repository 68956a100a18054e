import { z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';
import { WEBHOOK_EVENT_TYPES } from '../../../domain/webhooks/event-types';

const Url = z.string().trim().min(1, 'required').max(2048, 'at most 2048 characters').openapi({
  example: 'https://hooks.example.com/mcp-fleet',
  pattern: NON_BLANK_TEXT_PATTERN,
  description:
    "An http(s) URL the servers' URL policy allows (docs/servers.md: no cloud metadata, link-local or loopback address unless allowed); checked again against DNS at each delivery, and redirects are not followed",
});
const EventType = z.enum(WEBHOOK_EVENT_TYPES).openapi({ description: 'An event type (docs/webhooks.md)' });
const Events = z
  .array(EventType)
  .min(1, 'give at least one event type')
  .max(WEBHOOK_EVENT_TYPES.length * 2, `at most ${WEBHOOK_EVENT_TYPES.length * 2} entries`)
  .openapi({ description: 'The event types delivered to this endpoint; duplicates count once' });
const Description = z.string().max(2000, 'at most 2000 characters');

export const CreateWebhookBody = z
  .strictObject({
    url: Url,
    events: Events,
    enabled: z.boolean().optional().openapi({ description: 'Deliver to it (default true)' }),
    description: Description.optional(),
  })
  .openapi('CreateWebhookRequest');

export const UpdateWebhookBody = z
  .strictObject({
    url: Url.optional(),
    events: Events.optional(),
    enabled: z.boolean().optional().openapi({ description: 'false stops deliveries; true starts them again (and clears disabledReason)' }),
    description: Description.nullable().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'give at least one field' })
  .openapi('UpdateWebhookRequest', { minProperties: 1 });

export const ListWebhooksQuery = z.strictObject({ ...pageQuery });

export const WebhookOut = z
  .object({
    id: z.uuid(),
    url: z.string(),
    events: z.array(EventType),
    enabled: z.boolean(),
    description: z.string().nullable(),
    disabledReason: z
      .string()
      .nullable()
      .openapi({ description: 'Why the fleet disabled the endpoint itself (a day of failed deliveries), or null' }),
    previousSecretExpiresAt: z
      .string()
      .nullable()
      .openapi({ description: 'Until when the secret before the last rotation still signs deliveries beside the current one' }),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Webhook');

const Secret = z.string().openapi({
  description:
    'The signing secret (`whsec_` + base64), shown in this answer only: receivers verify `webhook-signature` with it (Standard Webhooks)',
  example: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
});

export const WebhookWithSecretOut = WebhookOut.extend({ secret: Secret }).openapi('WebhookWithSecret');

export const WebhookPage = pageSchema(WebhookOut).openapi('WebhookPage');

export const DeliveryParams = z.strictObject({ id: z.uuid('must be a uuid'), deliveryId: z.uuid('must be a uuid') });

export const ListDeliveriesQuery = z.strictObject({
  ...pageQuery,
  status: z.enum(['PENDING', 'DELIVERED', 'FAILED']).optional(),
});

export const DeliveryOut = z
  .object({
    id: z.uuid(),
    messageId: z
      .string()
      .openapi({ description: 'The `webhook-id` header of every attempt of this delivery (`msg_<id>`): receivers dedupe on it' }),
    webhookId: z.uuid(),
    eventId: z.string(),
    eventType: z.string(),
    status: z.enum(['PENDING', 'DELIVERED', 'FAILED']).openapi({
      description:
        'PENDING: attempts go on (see nextAttemptAt); DELIVERED: a 2xx answer; FAILED: refused (4xx other than 429, a redirect, a refused URL) or out of retries',
    }),
    attempts: z.number().int(),
    lastResponseCode: z.number().int().nullable(),
    lastAttemptAt: z.string().nullable(),
    lastError: z.string().nullable(),
    nextAttemptAt: z.string().nullable(),
    deliveredAt: z.string().nullable(),
    payload: z.record(z.string(), z.unknown()).openapi({ description: 'The JSON body sent (type, timestamp, data)' }),
    createdAt: z.string(),
  })
  .openapi('WebhookDelivery');

export const DeliveryPage = pageSchema(DeliveryOut).openapi('WebhookDeliveryPage');
