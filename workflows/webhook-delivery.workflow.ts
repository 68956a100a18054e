import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { WebhookDeliveryInput, WebhookDeliveryResult } from './contracts/webhook-delivery';

const { attemptWebhookDelivery } = proxyActivities<Activities>({
  // One HTTP request of at most 10 s plus two small writes.
  startToCloseTimeout: '1m',
  // The attempt beats while its request is out: a worker killed mid-request hands it on within this.
  heartbeatTimeout: '10s',
  // Retries here are for the worker's own trouble (database, crash); the receiver's answers
  // are the activity's result, and their waits are the workflow's timers below.
  retry: { initialInterval: '1s', maximumInterval: '1m', backoffCoefficient: 2 },
});

/**
 * One event to one endpoint, durably: attempts until the receiver takes it, refuses it for
 * good, or the retry schedule (about a day) runs out. Each wait is a timer, so a worker that
 * restarts picks the delivery up where it was.
 */
export async function webhookDelivery(input: WebhookDeliveryInput): Promise<WebhookDeliveryResult> {
  for (;;) {
    const step = await attemptWebhookDelivery(input.deliveryId);
    if (step.outcome !== 'retry') return step;
    await sleep(step.retryInMs);
  }
}
