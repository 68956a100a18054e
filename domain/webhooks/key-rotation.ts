import { Webhook } from '../../entities';
import type { EncryptionKey } from '../../lib/config';
import { openSecret, sealSecret } from '../../lib/crypto';
import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import { webhookSecretContext } from './webhook-secret';

export interface WebhookRotationReport {
  rotated: number;
  failed: { webhookId: string; error: string }[];
}

/**
 * Re-encrypts every webhook signing secret (and a previous one still kept) under the newest
 * key, as rotateServerTokens does for master tokens: row by row, each only if nobody changed
 * it meanwhile, so a concurrent rotate-secret is never overwritten.
 */
export async function rotateWebhookSecrets(
  orm: Orm,
  keys: readonly EncryptionKey[],
  options: { batchSize?: number; logger?: Logger; organizationId?: string } = {},
): Promise<WebhookRotationReport> {
  const current = keys[0];
  if (!current) throw new Error('ENCRYPTION_KEYS is empty');
  const report: WebhookRotationReport = { rotated: 0, failed: [] };
  const skip = new Set<string>();
  for (;;) {
    const em = orm.em.fork();
    const batch = await em.find(
      Webhook,
      {
        $or: [{ secretKeyId: { $ne: current.id } }, { previousSecretKeyId: { $ne: current.id } }],
        ...(options.organizationId ? { organization: options.organizationId } : {}),
        ...(skip.size ? { id: { $nin: [...skip] } } : {}),
      },
      { populate: ['secretCiphertext', 'previousSecretCiphertext'], limit: options.batchSize ?? 100, orderBy: { id: 'asc' } },
    );
    if (batch.length === 0) return report;
    for (const webhook of batch) {
      const context = webhookSecretContext(webhook.id);
      const reseal = (keyId: string, ciphertext: string) => sealSecret(keys, openSecret(keys, { keyId, ciphertext }, context), context);
      try {
        const sealed = reseal(webhook.secretKeyId, webhook.secretCiphertext);
        const previous =
          webhook.previousSecretKeyId && webhook.previousSecretCiphertext
            ? reseal(webhook.previousSecretKeyId, webhook.previousSecretCiphertext)
            : undefined;
        const updated = await em.nativeUpdate(
          Webhook,
          { id: webhook.id, secretKeyId: webhook.secretKeyId, secretCiphertext: webhook.secretCiphertext },
          {
            secretKeyId: sealed.keyId,
            secretCiphertext: sealed.ciphertext,
            ...(previous ? { previousSecretKeyId: previous.keyId, previousSecretCiphertext: previous.ciphertext } : {}),
          },
        );
        if (updated === 1) report.rotated++;
        // Changed meanwhile: looked at again in the next batch unless it is now current.
      } catch (error) {
        skip.add(webhook.id);
        report.failed.push({ webhookId: webhook.id, error: error instanceof Error ? error.message : String(error) });
        options.logger?.error({ webhookId: webhook.id, err: error }, 'could not re-encrypt a webhook secret');
      }
    }
  }
}
