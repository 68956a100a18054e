import { ApplicationFailure } from '@temporalio/activity';
import { publishCancels } from '../domain/runs/cancel';
import { DelegationRefused, recordDelegatedRun, type DelegationInput } from '../domain/runs/delegation';
import { DELEGATION_REFUSED, type DelegatedRun } from '../workflows/contracts/agent-execution';
import type { ActivityDeps } from './deps';

/** The parent run's side of `delegate` (workflows/agent-execution.workflow.ts, the delegate Update). */
export function createDelegationActivities(deps: ActivityDeps) {
  return {
    /** Records the child run of one `delegate` Update (idempotent by the Update's id); a refusal fails it for good, with its reason. */
    async recordDelegatedRun(input: DelegationInput): Promise<DelegatedRun> {
      try {
        return await recordDelegatedRun(deps.orm.em.fork(), input);
      } catch (error) {
        if (error instanceof DelegationRefused) throw ApplicationFailure.nonRetryable(error.message, DELEGATION_REFUSED, error.code);
        throw error;
      }
    },

    /**
     * The cancel's fast path for a parent's children (the cancel route's, domain/runs/cancel.ts):
     * whichever worker runs a child's prompt aborts its host call at once. Temporal's cancel of a
     * child workflow alone ends the child's run without waiting for its activity, which then
     * lets go of the host's task instead of cancelling it.
     */
    async cancelChildRuns(executionIds: string[]): Promise<void> {
      await publishCancels(deps.orm.em.fork(), executionIds);
    },
  };
}
