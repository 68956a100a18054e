import { ExecutionStatus, OverlapPolicy, type Execution } from '../../entities';

/**
 * What a new occurrence does while the task's earlier runs are still live (QUEUED or RUNNING),
 * decided under the task's row lock so two occurrences never both think they are alone. The
 * Temporal Schedule itself allows all overlaps: its own policy would skip without a trace, and
 * `trigger()` ignores it (sdk-typescript#1594), so the policy is applied here for schedules and
 * "run now" alike.
 *
 * | policy | earlier runs live | the new occurrence |
 * |---|---|---|
 * | SKIP | any | SKIPPED, with the run it yielded to |
 * | BUFFER_ONE | none waiting | waits (QUEUED, no agent yet), starts when they have ended |
 * | BUFFER_ONE | one already waiting | SKIPPED |
 * | BUFFER_ALL | any | waits its turn, oldest first |
 * | CANCEL_OTHER | any | cancels them (the host gets notifications/cancelled), starts once they ended |
 * | TERMINATE_OTHER | any | ends them CANCELLED at once (workflows terminated), starts now |
 * | ALLOW_ALL | any | starts now, beside them |
 */

export type OverlapDecision =
  { action: 'run'; terminate: Execution[] } | { action: 'skip'; reason: string } | { action: 'wait'; reason: string; cancel: Execution[] };

/** A task's run that waits for its turn: queued, with no agent chosen yet. */
export function isWaiting(execution: Execution): boolean {
  return execution.status === ExecutionStatus.QUEUED && !execution.agent;
}

function describe(execution: Execution): string {
  return `run ${execution.id} (${isWaiting(execution) ? 'waiting its turn' : execution.status})`;
}

/** `live`: the task's QUEUED and RUNNING runs, oldest first. */
export function decideOverlap(policy: OverlapPolicy, live: Execution[]): OverlapDecision {
  if (live.length === 0 || policy === OverlapPolicy.ALLOW_ALL) return { action: 'run', terminate: [] };
  const ahead = live.find((e) => !isWaiting(e)) ?? live[0]!;
  const others = live.length === 1 ? describe(ahead) : `${describe(ahead)} and ${live.length - 1} more`;
  switch (policy) {
    case OverlapPolicy.SKIP:
      return { action: 'skip', reason: `skipped: ${others} still going (overlap policy SKIP)` };
    case OverlapPolicy.BUFFER_ONE: {
      const buffered = live.find(isWaiting);
      if (buffered) return { action: 'skip', reason: `skipped: ${describe(buffered)} is already buffered (overlap policy BUFFER_ONE)` };
      return { action: 'wait', reason: `buffered behind ${others} (overlap policy BUFFER_ONE)`, cancel: [] };
    }
    case OverlapPolicy.BUFFER_ALL:
      return { action: 'wait', reason: `buffered behind ${others} (overlap policy BUFFER_ALL)`, cancel: [] };
    case OverlapPolicy.CANCEL_OTHER:
      return { action: 'wait', reason: `cancelling ${others} first (overlap policy CANCEL_OTHER)`, cancel: live };
    case OverlapPolicy.TERMINATE_OTHER:
      return { action: 'run', terminate: live };
  }
  return { action: 'run', terminate: [] };
}
