import { existsSync } from 'node:fs';
import path from 'node:path';
import { DefaultLogger, NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities';
import { RunningExecutions } from '../activities/running-executions';
import { McpClientPool } from '../lib/mcp-client';

export const WORKFLOWS_PATH = require.resolve('../workflows');

/** Where `npm run build` writes the prebuilt workflow bundle production workers load. */
export const PREBUILT_BUNDLE_PATH = path.resolve(__dirname, '..', 'workflow-bundle.js');

export interface WorkerDeps extends Omit<ActivityDeps, 'mcp' | 'running'> {
  /** Defaults to a new pool; the caller closes it after the worker stops. */
  mcp?: McpClientPool;
  /** Defaults to a new registry; pass one to wire the cancel fast path (lib/control.ts). */
  running?: RunningExecutions;
  connection: NativeConnection;
  /** A bundle built once (tests) or its file path (production); otherwise bundled at start. */
  workflowBundle?: WorkflowBundleWithSourceMap | { codePath: string };
}

export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  // The bundler's INFO output is a whole webpack summary; only problems are worth showing.
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
}

/** Picks the workflow code: explicit bundle, then WORKFLOW_BUNDLE_PATH, then dist's prebuilt file, else bundle now. */
function workflowSource(deps: WorkerDeps) {
  if (deps.workflowBundle) return { workflowBundle: deps.workflowBundle };
  const configured = deps.config.temporal.workflowBundlePath;
  if (configured) return { workflowBundle: { codePath: configured } };
  if (__filename.endsWith('.js') && existsSync(PREBUILT_BUNDLE_PATH)) return { workflowBundle: { codePath: PREBUILT_BUNDLE_PATH } };
  return { workflowsPath: WORKFLOWS_PATH };
}

/** The one way to build a worker: the entry point, tests and benchmarks all call this. */
export async function createWorker(deps: WorkerDeps): Promise<Worker> {
  return Worker.create({
    connection: deps.connection,
    namespace: deps.config.temporal.namespace,
    taskQueue: deps.config.temporal.taskQueue,
    activities: createActivities({
      ...deps,
      mcp: deps.mcp ?? new McpClientPool({ timeoutMs: deps.config.mcp.timeoutMs, logger: deps.logger }),
      running: deps.running ?? new RunningExecutions(),
    }),
    // Running activities heartbeat every second; a cancel reaches them within about that long
    // even without the NOTIFY fast path.
    maxHeartbeatThrottleInterval: '1s',
    maxConcurrentActivityTaskExecutions: deps.config.worker.maxConcurrentActivities,
    maxConcurrentLocalActivityExecutions: deps.config.worker.maxConcurrentActivities,
    maxCachedWorkflows: deps.config.worker.maxCachedWorkflows,
    ...workflowSource(deps),
    // On SIGTERM/SIGINT polling stops at once; running activities get this long to finish.
    shutdownGraceTime: deps.config.worker.shutdownGraceMs,
  });
}
