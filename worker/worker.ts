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

/** The workflow-side tracing interceptors (workflows/interceptors.ts), in the bundle of a worker with tracing on. */
export const WORKFLOW_INTERCEPTORS_PATH = require.resolve('../workflows/interceptors');

/** Where `npm run build` writes the prebuilt workflow bundles production workers load: with the tracing interceptors, and without. */
export const PREBUILT_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.js');
export const PREBUILT_UNTRACED_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.untraced.js');

/**
 * The workflow code, with the workflow-side tracing interceptors unless `traced` is false. They
 * are the dearest part of a workflow: the reusable V8 context evaluates a workflow's modules
 * once per workflow, and theirs (OpenTelemetry's SDK) take about 240 KB of heap per cached
 * workflow and most of the CPU of starting one (docs/benchmarks.md, "Sizing"). A worker with
 * tracing off loads the bundle without them; histories replay on either (test/workflow-replay.test.ts).
 */
export function bundleWorkflows({ traced = true }: { traced?: boolean } = {}): Promise<WorkflowBundleWithSourceMap> {
  // The bundler's INFO output is a whole webpack summary; only problems are worth showing.
  return bundleWorkflowCode({
    workflowsPath: WORKFLOWS_PATH,
    workflowInterceptorModules: traced ? [WORKFLOW_INTERCEPTORS_PATH] : [],
    logger: new DefaultLogger('WARN'),
  });
}

/** The prebuilt bundles a compiled worker may load, when `npm run build` wrote them. */
export interface PrebuiltBundles {
  traced?: string;
  untraced?: string;
}

function prebuiltBundles(): PrebuiltBundles {
  if (!__filename.endsWith('.js')) return {};
  const existing = (file: string) => (existsSync(file) ? file : undefined);
  return { traced: existing(PREBUILT_BUNDLE_PATH), untraced: existing(PREBUILT_UNTRACED_BUNDLE_PATH) };
}

/**
 * Picks the workflow code: explicit bundle, then WORKFLOW_BUNDLE_PATH, then dist's prebuilt file
 * (the one without the tracing interceptors when tracing is off), else bundle now (with the
 * interceptors only when tracing is on).
 */
export function workflowSource(
  deps: Pick<WorkerDeps, 'workflowBundle' | 'config' | 'tracing'>,
  prebuilt: PrebuiltBundles = prebuiltBundles(),
): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> & { workflowModules: string[] } {
  const workflowModules = deps.tracing.enabled ? [WORKFLOW_INTERCEPTORS_PATH] : [];
  if (deps.workflowBundle) return { workflowBundle: deps.workflowBundle, workflowModules };
  const configured = deps.config.temporal.workflowBundlePath;
  if (configured) return { workflowBundle: { codePath: configured }, workflowModules };
  const codePath = deps.tracing.enabled ? prebuilt.traced : (prebuilt.untraced ?? prebuilt.traced);
  if (codePath) return { workflowBundle: { codePath }, workflowModules };
  return { workflowsPath: WORKFLOWS_PATH, workflowModules };
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
 * on; a processor that drops them when it is off and the bundle has them all the same (one given
 * explicitly or by WORKFLOW_BUNDLE_PATH).
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
  const { workflowModules, ...source } = workflowSource(deps);
  return Worker.create({
    connection: deps.connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: deps.config.temporal.taskQueue,
    activities: createActivities(deps),
    interceptors: {
      activity: deps.tracing.enabled
        ? [tracedActivities, deps.metrics.runTransitions, historySafeFailures]
        : [deps.metrics.runTransitions, historySafeFailures],
      // Used when the worker bundles at start (workflowsPath); a prebuilt bundle has them already, or not.
      workflowModules,
    },
    sinks: { exporter: workflowSpanSink(deps) },
    // Running activities heartbeat every second; a cancel reaches them within about that long
    // even without the NOTIFY fast path.
    maxHeartbeatThrottleInterval: '1s',
    maxConcurrentActivityTaskExecutions: deps.config.worker.maxConcurrentActivities,
    maxConcurrentLocalActivityExecutions: deps.config.worker.maxConcurrentActivities,
    maxCachedWorkflows: deps.config.worker.maxCachedWorkflows,
    ...source,
    ...versioning(deps),
    // On SIGTERM/SIGINT polling stops at once; running activities get this long to finish.
    shutdownGraceTime: deps.config.worker.shutdownGraceMs,
  });
}
