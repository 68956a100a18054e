/**
 * The contract of `runReconcile` (workflows/run-reconcile.workflow.ts), shared by the workflow,
 * its activity, the worker's schedule and the tests; it imports nothing of the project.
 */

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const RUN_RECONCILE_WORKFLOW = 'runReconcile';

export interface RunReconcileInput {
  /** How far back (by close time) to look for terminated or timed-out `agentExecution` workflows. */
  lookbackSeconds: number;
  /** Only the workflows of this task queue: the runs of this deployment (and, in tests, of this test file). */
  taskQueue: string;
  /**
   * A run live for longer than this whose workflow Temporal does not know is lost, and ends
   * FAILED (default: lookbackSeconds). Tests whose database other Temporal servers' runs share
   * keep it long.
   */
  lostAfterSeconds?: number;
}

/** One run the reconcile ended, as it ended it. */
export interface ReconciledRun {
  executionId: string;
  /** FAILED: a run live since before the window whose workflow Temporal does not know. */
  status: 'CANCELLED' | 'TIMED_OUT' | 'FAILED';
  /** Whether its task on the host was sent tasks/cancel (and answered); false for a run without a task. */
  taskCancelled: boolean;
}

export interface RunReconcileSummary {
  /** Closed workflows visibility listed in the window. */
  closedWorkflows: number;
  /** Runs ended now; the others were already ended (by their workflow, another worker's reconcile, or before). */
  ended: ReconciledRun[];
  /** Listed or checked, but whose workflow id runs (still, or again: a newer run of the id), or (created in the window) is unknown to Temporal: left alone. */
  running: number;
  /** Live runs created before the window, described this sweep (their workflow may have closed before it). */
  olderChecked?: number;
}

/** The workflow's signature, for typed starts by type name. */
export type RunReconcileWorkflow = (input: RunReconcileInput) => Promise<RunReconcileSummary>;
