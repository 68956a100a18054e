import { NativeConnection } from '@temporalio/worker';
import { loadConfig } from '../lib/config';
import { createLogger } from '../lib/logger';
import { initOrm, requireDatabaseUrl } from '../lib/orm';
import { installTemporalRuntime } from './runtime';
import { ensureServerHealthSchedule } from './schedules';
import { createWorker } from './worker';
import { McpClientPool } from '../lib/mcp-client';
import { RunningExecutions } from '../activities/running-executions';
import { listenForControl } from './cancel-listener';
import { connectTemporal, createTemporalClient } from '../lib/temporal';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config, 'worker');
  // Temporal's runtime turns SIGINT/SIGTERM into worker.shutdown(): polling stops, running
  // activities get shutdownGraceTime to finish, then run() resolves and we close connections.
  installTemporalRuntime(logger);
  const address = config.temporal.address ?? `127.0.0.1:${config.temporal.devPort}`;
  const orm = await initOrm(requireDatabaseUrl(config.database.url), { poolMax: config.database.poolMax, logger });
  const connection = await NativeConnection.connect({ address });
  const clientConnection = await connectTemporal(address);
  const mcp = new McpClientPool({ timeoutMs: config.mcp.timeoutMs, logger });
  const running = new RunningExecutions();
  const control = listenForControl(requireDatabaseUrl(config.database.url), running, logger);
  const temporalClient = createTemporalClient(clientConnection, config);
  try {
    await ensureServerHealthSchedule(temporalClient, config);
    const worker = await createWorker({ config, orm, logger, connection, mcp, running, temporalClient });
    logger.info({ address, taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace }, 'worker ready');
    await worker.run();
    logger.info('worker stopped');
  } finally {
    await control.close();
    await mcp.closeAll();
    await clientConnection.close();
    await connection.close();
    await orm.close(true);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
