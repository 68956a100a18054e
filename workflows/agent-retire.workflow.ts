import { ActivityFailure, ApplicationFailure, proxyActivities, setCurrentDetails, TimeoutFailure } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AgentRetireInput, RetireResult } from './contracts/agent-retire';

/**
 * How long an unreachable server is waited for: a host down for maintenance overnight still
 * loses the agent; one gone for longer is reported in the audit row instead of retried forever.
 */
export const RETIRE_GIVE_UP_AFTER = '12h';

const { retireAgent } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  scheduleToCloseTimeout: RETIRE_GIVE_UP_AFTER,
  // 2 s, 4 s, 8 s ... then every 10 min: a host restarting is caught at once, a long outage costs little.
  retry: { initialInterval: '2s', backoffCoefficient: 2, maximumInterval: '10m' },
});

const { recordRetire } = proxyActivities<Activities>({
  startToCloseTimeout: '1m',
  retry: { maximumAttempts: 10, initialInterval: '1s' },
});

function giveUpReason(error: unknown): string {
  // The last attempt's own sentence is more use to a reader than "activity timed out".
  let cause: unknown = error;
  while ((cause instanceof ActivityFailure || cause instanceof TimeoutFailure) && cause.cause) cause = cause.cause;
  const last = cause instanceof ApplicationFailure ? cause.message : undefined;
  return `the server stayed unreachable for ${RETIRE_GIVE_UP_AFTER}${last ? `: ${last}` : ''}`;
}

/**
 * Retirement of a deleted agent (workflow id `agent-retire-<agentId>`): the server's
 * `deactivate_agent` with `removeWorkspace: true`, retried while the server cannot be reached
 * (for RETIRE_GIVE_UP_AFTER), then an `agent.retire` audit row with the outcome.
 */
export async function agentRetire(input: AgentRetireInput): Promise<RetireResult> {
  setCurrentDetails('**deactivating** on the server (retried while it is unreachable)');
  let result: RetireResult;
  try {
    result = await retireAgent(input);
  } catch (error) {
    result = { removed: false, error: giveUpReason(error) };
  }
  await recordRetire(input, result);
  setCurrentDetails(result.removed ? '**removed** from the server with its workspace' : `**not removed**: ${result.error}`);
  return result;
}
