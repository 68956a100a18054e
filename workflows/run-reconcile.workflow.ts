import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { RunReconcileInput, RunReconcileSummary } from './contracts/run-reconcile';

const { reconcileClosedRuns } = proxyActivities<Activities>({
  // One visibility listing, then a short transaction and a best-effort tasks/cancel per run found.
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '1s' },
});

/**
 * The `run-reconcile` schedule's run: ends the runs whose `agentExecution` workflow closed
 * without running its own end (terminated by an operator, or timed out), as that end would
 * have (activities/reconcile.activities.ts).
 */
export async function runReconcile(input: RunReconcileInput): Promise<RunReconcileSummary> {
  const summary = await reconcileClosedRuns(input);
  setCurrentDetails(
    `${summary.closedWorkflows} terminated or timed-out run workflows in the last ${input.lookbackSeconds} s; ` +
      `${summary.olderChecked ? `${summary.olderChecked} runs live since before that checked; ` : ''}` +
      `${summary.ended.length} runs ended now` +
      (summary.ended.length ? `: ${summary.ended.map((r) => `${r.executionId} ${r.status}`).join(', ')}` : ''),
  );
  return summary;
}
