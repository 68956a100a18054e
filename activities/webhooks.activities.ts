import { Context } from '@temporalio/activity';
import { WebhookDelivery, WebhookDeliveryStatus } from '../entities';
import { disableIfDeadSince } from '../domain/webhooks/disable';
import { signWebhook } from '../domain/webhooks/signing';
import { signingSecrets } from '../domain/webhooks/webhook-commands';
import { urlPolicy } from '../lib/url-policy';
import {
  MAX_RETRY_AFTER_MS,
  WEBHOOK_ATTEMPT_TIMEOUT_MS,
  WEBHOOK_RETRY_DELAYS_MS,
  webhookMessageId,
  type WebhookAttemptOutcome,
} from '../workflows/contracts/webhook-delivery';
import type { ActivityDeps } from './deps';
import { postWebhook, type WebhookPostResult } from './webhook-post';

/** Worth another attempt: no answer, a server error, or "too many requests". Other 4xx (and 3xx: no redirects) are final. */
function retryable(result: WebhookPostResult): boolean {
  if (result.kind === 'unreachable') return true;
  if (result.kind === 'refused') return false;
  return result.status >= 500 || result.status === 429;
}

function describe(result: WebhookPostResult): string | undefined {
  if (result.kind !== 'answered') return result.error;
  return result.status >= 200 && result.status < 300 ? undefined : `HTTP ${result.status}`;
}

export function createWebhookActivities(deps: Pick<ActivityDeps, 'orm' | 'config' | 'logger' | 'metrics'>) {
  return {
    /**
     * One attempt of one delivery, recorded on its row. The message is signed at each attempt
     * (its timestamp is the attempt's, as receivers check freshness) under the same id. A row
     * that is no longer PENDING answers what it became, so a retried activity sends nothing twice
     * once the outcome is recorded.
     */
    async attemptWebhookDelivery(deliveryId: string): Promise<WebhookAttemptOutcome> {
      const em = deps.orm.em.fork();
      const delivery = await em.findOne(WebhookDelivery, deliveryId, { populate: ['webhook'] });
      if (!delivery) return { outcome: 'gone', attempts: 0 };
      if (delivery.status === WebhookDeliveryStatus.DELIVERED) return { outcome: 'delivered', attempts: delivery.attempts };
      if (delivery.status === WebhookDeliveryStatus.FAILED) return { outcome: 'failed', attempts: delivery.attempts };
      const webhook = delivery.webhook;
      const now = new Date();
      if (!webhook.enabled) {
        delivery.status = WebhookDeliveryStatus.FAILED;
        delivery.lastError = 'the endpoint is disabled';
        delivery.nextAttemptAt = undefined;
        await em.flush();
        return { outcome: 'failed', attempts: delivery.attempts };
      }
      const body = JSON.stringify(delivery.payload);
      const headers = signWebhook(await signingSecrets(em, deps.config, webhook, now), webhookMessageId(delivery.id), now, body);
      // Beats while the request is out, so a worker that dies mid-request gives the attempt to
      // another within the heartbeat timeout rather than the activity's minute.
      const activity = Context.current();
      const beating = setInterval(() => activity.heartbeat(), 1000);
      const result = await postWebhook(urlPolicy(deps.config), webhook.url, { ...headers }, body, WEBHOOK_ATTEMPT_TIMEOUT_MS).finally(() =>
        clearInterval(beating),
      );

      delivery.attempts += 1;
      delivery.lastAttemptAt = now;
      delivery.lastResponseCode = result.kind === 'answered' ? result.status : undefined;
      delivery.lastError = describe(result);
      const log = {
        deliveryId,
        webhookId: webhook.id,
        attempt: delivery.attempts,
        outcome: result.kind,
        status: delivery.lastResponseCode,
      };
      if (result.kind === 'answered' && result.status >= 200 && result.status < 300) {
        delivery.status = WebhookDeliveryStatus.DELIVERED;
        delivery.deliveredAt = new Date();
        delivery.nextAttemptAt = undefined;
        await em.flush();
        deps.metrics?.countWebhookAttempt('delivered');
        deps.logger.info(log, 'webhook delivered');
        return { outcome: 'delivered', attempts: delivery.attempts };
      }
      const scheduled = WEBHOOK_RETRY_DELAYS_MS[delivery.attempts - 1];
      if (!retryable(result) || scheduled === undefined) {
        delivery.status = WebhookDeliveryStatus.FAILED;
        delivery.nextAttemptAt = undefined;
        await em.flush();
        deps.metrics?.countWebhookAttempt('failed');
        deps.logger.warn({ ...log, error: delivery.lastError }, 'webhook delivery failed');
        // Out of retries: this delivery has failed for about a day. If nothing reached the
        // endpoint meanwhile either, it is gone; keep sending would only pile up.
        if (retryable(result)) await disableIfDeadSince(em, delivery, deps.logger);
        return { outcome: 'failed', attempts: delivery.attempts };
      }
      const asked = result.kind === 'answered' ? result.retryAfterMs : undefined;
      const retryInMs = asked !== undefined ? Math.min(Math.max(asked, 1000), MAX_RETRY_AFTER_MS) : scheduled;
      delivery.nextAttemptAt = new Date(Date.now() + retryInMs);
      await em.flush();
      deps.metrics?.countWebhookAttempt('retry');
      deps.logger.info({ ...log, retryInMs }, 'webhook attempt failed; retrying');
      return { outcome: 'retry', attempts: delivery.attempts, retryInMs };
    },
  };
}
