/**
 * `npm run keys:rotate`: after putting a new key first in ENCRYPTION_KEYS (keep the old ones
 * after it), re-encrypts every stored secret under the new key. Safe while the system runs;
 * once it reports no failure, the old keys can be removed from ENCRYPTION_KEYS.
 */
import { loadConfig } from '../lib/config';
import { rotateServerTokens } from '../domain/servers/key-rotation';
import { rotateWebhookSecrets } from '../domain/webhooks/key-rotation';
import { createLogger } from '../lib/logger';
import { initOrm, requireDatabaseUrl } from '../lib/orm';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config, 'keys:rotate');
  const orm = await initOrm(requireDatabaseUrl(config.database.url));
  try {
    const report = await rotateServerTokens(orm, config.encryptionKeys, { logger });
    logger.info(
      { newKey: config.encryptionKeys[0]!.id, rotated: report.rotated, failed: report.failed.length },
      'master tokens re-encrypted',
    );
    const webhooks = await rotateWebhookSecrets(orm, config.encryptionKeys, { logger });
    logger.info(
      { newKey: config.encryptionKeys[0]!.id, rotated: webhooks.rotated, failed: webhooks.failed.length },
      'webhook signing secrets re-encrypted',
    );
    if (report.failed.length || webhooks.failed.length) process.exitCode = 1;
  } finally {
    await orm.close(true);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`keys:rotate failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
