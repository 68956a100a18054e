import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { initOrm, requireDatabaseUrl } from '../lib/orm';
import { connectTemporal, createTemporalClient } from '../lib/temporal';
import { RealtimeHub } from './realtime/hub';
import { startApiServer } from './server';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config, 'api');
  const orm = await initOrm(requireDatabaseUrl(config.database.url), { poolMax: config.database.poolMax, logger });
  const connection = await connectTemporal(config.temporal.address ?? `127.0.0.1:${config.temporal.devPort}`);
  const client = createTemporalClient(connection, config);
  const events = new RealtimeHub(requireDatabaseUrl(config.database.url), orm, logger);
  await events.start();
  const api = await startApiServer({ config, orm, temporal: { connection, client, taskQueue: config.temporal.taskQueue }, logger, events });
  logger.info({ url: api.url }, 'api listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'api stopping');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await api.close().catch((err: unknown) => logger.warn({ err }, 'http close'));
    await events.close();
    await connection.close().catch(() => undefined);
    await orm.close(true);
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  process.stderr.write(`api failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
