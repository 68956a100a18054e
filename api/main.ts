import { loadConfig } from '../lib/config';
import { startTracing } from '../lib/tracing';
import { createAppDeps } from './deps';
import { startApiServer } from './server';

async function main(): Promise<void> {
  const config = loadConfig();
  // Before the Temporal client exists: its interceptor looks the tracer up as it makes spans.
  const tracing = startTracing(config.tracing, 'api');
  const { deps, close } = await createAppDeps(config);
  const { logger } = deps;
  const api = await startApiServer(deps);
  logger.info({ url: api.url }, 'api listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'api stopping');
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    await api.close().catch((err: unknown) => logger.warn({ err }, 'http close'));
    await close().catch((err: unknown) => logger.warn({ err }, 'closing the connections'));
    await tracing.shutdown().catch((err: unknown) => logger.warn({ err }, 'exporting the last spans'));
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((error: unknown) => {
  process.stderr.write(`api failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
