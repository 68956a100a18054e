import { loadConfig } from '../lib/config';
import { temporalAddress } from '../lib/temporal';
import { startTracing } from '../lib/tracing';
import { createWorkerDeps } from './deps';
import { promoteIfFirst } from './deployment';
import { ensureRunReconcileSchedule, ensureServerHealthSchedule } from './schedules';
import { createWorker, WORKER_SHUTDOWN_REPORT_MS } from './worker';

async function main(): Promise<void> {
  const config = loadConfig();
  // Before any client or worker exists: their interceptors look the tracer up as they make spans.
  const tracing = startTracing(config.tracing, 'worker');
  // createWorkerDeps installs Temporal's runtime, which turns SIGINT/SIGTERM into
  // worker.shutdown(): polling stops, running activities get shutdownGraceTime to finish, then
  // run() resolves and we close the connections.
  const { deps, close } = await createWorkerDeps(config, { tracing });
  // A stop has a deadline: past the activities' grace and the time to report them, Temporal is
  // taken to be unreachable, and the process ends without waiting for the SDK's retries. Those
  // activities are retried on another worker, as after a lost one (docs/operations.md).
  const stopDeadline = () => {
    setTimeout(() => {
      deps.logger.error(
        { graceMs: config.worker.shutdownGraceMs, reportMs: WORKER_SHUTDOWN_REPORT_MS },
        'worker stopped without reporting its last activities to Temporal (unreachable); Temporal retries them on another worker',
      );
      process.exit(0);
    }, config.worker.shutdownGraceMs + WORKER_SHUTDOWN_REPORT_MS).unref();
  };
  process.once('SIGTERM', stopDeadline);
  process.once('SIGINT', stopDeadline);
  try {
    await ensureServerHealthSchedule(deps.temporalClient, config);
    await ensureRunReconcileSchedule(deps.temporalClient, config);
    const worker = await createWorker(deps);
    deps.logger.info(
      { address: temporalAddress(config), taskQueue: config.temporal.taskQueue, namespace: config.temporal.namespace },
      'worker ready',
    );
    const running = worker.run();
    // Awaited below; marked handled now so a run that fails during the promotion is not unhandled.
    running.catch(() => undefined);
    const deployment = config.worker.deployment;
    if (deployment) {
      deps.logger.info({ deployment: deployment.name, buildId: deployment.buildId }, 'worker version');
      await promoteIfFirst(deps.temporalClient, config.temporal.namespace, deployment, deps.logger).catch((err: unknown) =>
        deps.logger.warn({ err }, 'could not check whether this is the deployment’s first version; promote it with the CLI'),
      );
    }
    await running;
    deps.logger.info('worker stopped');
  } finally {
    await close();
    await tracing.shutdown().catch((err: unknown) => deps.logger.warn({ err }, 'exporting the last spans'));
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`worker failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
