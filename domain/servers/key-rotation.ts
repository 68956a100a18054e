import { McpServer } from '../../entities';
import type { EncryptionKey } from '../../lib/config';
import { openSecret, sealSecret } from '../../lib/crypto';
import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import { masterTokenContext } from './master-token';

export interface RotationReport {
  rotated: number;
  failed: { serverId: string; error: string }[];
}

/**
 * Re-encrypts every master token under the newest key (the first of ENCRYPTION_KEYS) while the
 * system runs: rows are rewritten one by one, each only if nobody changed it meanwhile, so a
 * concurrent PUT with a new token is never overwritten.
 */
export async function rotateServerTokens(
  orm: Orm,
  keys: readonly EncryptionKey[],
  options: { batchSize?: number; logger?: Logger; organizationId?: string } = {},
): Promise<RotationReport> {
  const current = keys[0];
  if (!current) throw new Error('ENCRYPTION_KEYS is empty');
  const batchSize = options.batchSize ?? 100;
  const report: RotationReport = { rotated: 0, failed: [] };
  const skip = new Set<string>();
  for (;;) {
    const em = orm.em.fork();
    const batch = await em.find(
      McpServer,
      {
        masterTokenKeyId: { $ne: current.id },
        ...(options.organizationId ? { organization: options.organizationId } : {}),
        ...(skip.size ? { id: { $nin: [...skip] } } : {}),
      },
      { populate: ['masterTokenCiphertext'], limit: batchSize, orderBy: { id: 'asc' } },
    );
    if (batch.length === 0) return report;
    for (const server of batch) {
      const old = { keyId: server.masterTokenKeyId, ciphertext: server.masterTokenCiphertext };
      try {
        const token = openSecret(keys, old, masterTokenContext(server.id));
        const sealed = sealSecret(keys, token, masterTokenContext(server.id));
        const updated = await em.nativeUpdate(
          McpServer,
          { id: server.id, masterTokenKeyId: old.keyId, masterTokenCiphertext: old.ciphertext },
          { masterTokenKeyId: sealed.keyId, masterTokenCiphertext: sealed.ciphertext },
        );
        if (updated === 1) report.rotated++;
      } catch (error) {
        skip.add(server.id);
        report.failed.push({ serverId: server.id, error: error instanceof Error ? error.message : String(error) });
        options.logger?.error({ serverId: server.id, err: error }, 'could not re-encrypt a master token');
      }
    }
  }
}
