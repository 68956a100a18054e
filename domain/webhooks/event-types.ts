/**
 * What a webhook can be told about. Each is a fact an operator acts on (a failure, a wait for
 * a person, a server going away); payloads carry ids, status and reason, never prompt text,
 * outputs, answers or secrets.
 */
export const WEBHOOK_EVENT_TYPES = [
  'execution.failed',
  'execution.timed_out',
  'execution.input_required',
  'task.occurrence_skipped',
  'task.occurrence_failed',
  'server.offline',
  'server.degraded',
  'tool.drift',
  'agent.retire_failed',
  'webhook.disabled',
] as const;

export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Sent only by `POST /api/webhooks/:id/test`, whatever the endpoint subscribed to. */
export const WEBHOOK_TEST_EVENT = 'webhook.test';
