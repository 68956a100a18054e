/**
 * The workflow-side interceptors, bundled into the workflow code by the worker and the test
 * harness (`workflowInterceptorModules`), as @temporalio/interceptors-opentelemetry's docs set it
 * up: a workflow's span continues the trace its start carried in its headers (or starts one, for
 * a Schedule's occurrence), and each activity it schedules carries the workflow's context on.
 * Spans made in the sandbox leave through the worker's `exporter` sink (worker/worker.ts), which
 * drops them when tracing is off. Headers are not part of a workflow's history decisions, so
 * replaying a history recorded without these interceptors gives the same commands.
 */
// eslint-disable-next-line @typescript-eslint/no-restricted-imports -- the package's `lib/`, not ours: its sandbox entry point
export { interceptors } from '@temporalio/interceptors-opentelemetry/lib/workflow-interceptors';
