import { existsSync } from 'node:fs';
import path from 'node:path';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Resource } from '@opentelemetry/resources';
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import {
  DefaultLogger,
  Worker,
  bundleWorkflowCode,
  type ActivityInterceptorsFactory,
  type WorkerOptions,
  type WorkflowBundleWithSourceMap,
} from '@temporalio/worker';
import { createActivities } from '../activities';
import type { WorkerDeps } from './deps';
import { historySafeFailures } from './history-safe-failures';

export type { WorkerDeps } from './deps';

export const WORKFLOWS_PATH = require.resolve('../workflows');

/** The workflow-side tracing interceptors (workflows/interceptors.ts), in the bundle of a worker that traces. */
export const WORKFLOW_INTERCEPTORS_PATH = require.resolve('../workflows/interceptors');

/** Where `npm run build` writes the prebuilt workflow bundles production workers load: with the tracing interceptors… */
export const PREBUILT_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.js');
/** …and without them, for a worker with tracing off. */
export const PREBUILT_UNTRACED_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.untraced.js');

/**
 * The workflow code, with the tracing interceptors unless `traced` is false. Without them a
 * workflow task does less: in the sandbox they build a span per workflow and per activity even
 * when tracing is off (the sink then drops them), which cost the first workflow task of a
 * connection test about a third of its time on a loaded machine (docs/benchmarks.md). Both
 * bundles replay the same histories: the interceptors add headers, never a command.
 */
export function bundleWorkflows({ traced = true }: { traced?: boolean } = {}): Promise<WorkflowBundleWithSourceMap> {
  // The bundler's INFO output is a whole webpack summary; only problems are worth showing.
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: traced ? [WORKFLOW_INTERCEPTORS_PATH] : [],
    logger: new DefaultLogger('WARN'),
  });
}

/**
 * Picks the workflow code: explicit bundle, then WORKFLOW_BUNDLE_PATH, then dist's prebuilt file
 * (the untraced one when tracing is off), else bundle now (with the interceptors when tracing is on).
 */
export function workflowSource(
  deps: Pick<WorkerDeps, 'workflowBundle' | 'config' | 'tracing'>,
  prebuilt = { compiled: __filename.endsWith('.js'), traced: PREBUILT_BUNDLE_PATH, untraced: PREBUILT_UNTRACED_BUNDLE_PATH },
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath' | 'interceptors'> {
  if (deps.workflowBundle) return { workflowBundle: deps.workflowBundle };
  const configured = deps.config.temporal.workflowBundlePath;
  if (configured) return { workflowBundle: { codePath: configured } };
  const traced = deps.tracing.enabled;
  if (prebuilt.compiled) {
    // A dist/ built before the untraced bundle existed has only the traced one: it still runs.
    const file = (traced ? [prebuilt.traced] : [prebuilt.untraced, prebuilt.traced]).find((f) => existsSync(f));
    if (file) return { workflowBundle: { codePath: file } };
  }
  return { workflowsPath: WORKFLOWS_PATH, interceptors: { workflowModules: traced ? [WORKFLOW_INTERCEPTORS_PATH] : [] } };
}

/**
 * Worker Deployment Versioning when the config names a deployment: every workflow is pinned to
 * the build that started it (its history replays only on that code), new runs go to the
 * deployment's current version. docs/operations.md has the rolling upgrade.
 */
function versioning(deps: WorkerDeps): Pick<WorkerOptions, 'workerDeploymentOptions'> {
  const deployment = deps.config.worker.deployment;
  if (!deployment) return {};
  return {
    workerDeploymentOptions: {
      useWorkerVersioning: true,
      version: { deploymentName: deployment.name, buildId: deployment.buildId },
      defaultVersioningBehavior: 'PINNED',
    },
  };
}

/** Activity spans, children of the workflow's, around the activity interceptors that follow. */
const tracedActivities: ActivityInterceptorsFactory = (ctx) => ({
  inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
  outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
});

/**
 * Where the bundled workflow interceptors' spans go: the worker's span processor when tracing is
 * on; a processor that drops them when it is off, since the bundle (built once) always has them.
 */
function workflowSpanSink(deps: WorkerDeps) {
  return deps.tracing.enabled
    ? makeWorkflowExporter(deps.tracing.spanProcessor, deps.tracing.resource)
    : makeWorkflowExporter(new NoopSpanProcessor(), Resource.empty());
}

/**
 * The one way to build a worker: the entry point, tests and benchmarks all call this, with
 * the deps `createWorkerDeps` (worker/deps.ts) built. Every dependency is required: a worker
 * without the pool or the registry the cancel listener feeds would run, but wrongly.
 */
export async function createWorker(deps: WorkerDeps): Promise<Worker> {
  for (const part of ['mcp', 'running', 'temporalClient', 'orm', 'connection'] as const) {
    if (!deps[part]) throw new Error(`createWorker: ${part} is missing (build the deps with createWorkerDeps)`);
  }
  const source = workflowSource(deps);
  return Worker.create({
    connection: deps.connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: deps.config.temporal.taskQueue,
    activities: createActivities(deps),
    interceptors: {
      activity: deps.tracing.enabled
        ? [tracedActivities, deps.metrics.runTransitions, historySafeFailures]
        : [deps.metrics.runTransitions, historySafeFailures],
      // Used when the worker bundles at start (workflowsPath); a prebuilt bundle has them or not already.
      workflowModules: source.interceptors?.workflowModules ?? [],
    },
    sinks: { exporter: workflowSpanSink(deps) },
    // Running activities heartbeat every second; a cancel reaches them within about that long
    // even without the NOTIFY fast path.
    maxHeartbeatThrottleInterval: '1s',
    maxConcurrentActivityTaskExecutions: deps.config.worker.maxConcurrentActivities,
    maxConcurrentLocalActivityExecutions: deps.config.worker.maxConcurrentActivities,
    maxCachedWorkflows: deps.config.worker.maxCachedWorkflows,
    workflowBundle: source.workflowBundle,
    workflowsPath: source.workflowsPath,
    ...versioning(deps),
    // On SIGTERM/SIGINT polling stops at once; running activities get this long to finish.
    shutdownGraceTime: deps.config.worker.shutdownGraceMs,
  });
}

/**
 * How long a stopping worker tries to hand its last activities' results to Temporal after their
 * grace, before worker/main.ts stops it anyway: while Temporal is unreachable the SDK retries
 * each for about 30 s more, which would run past a supervisor's stop timeout (Compose: 60 s).
 * (The SDK's own `shutdownForceTime` fails its worker with "Worker still in use" instead.)
 */
export const WORKER_SHUTDOWN_REPORT_MS = 10_000;
