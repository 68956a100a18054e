import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AgentProvisionInput, ProvisionResult } from './contracts/agent-provision';

const { provisionAgent, recordProvision } = proxyActivities<Activities>({
  // Each waits for an unavailable PostgreSQL for up to half this (DatabaseWait): the default
  // DATABASE_OUTAGE_GRACE_MS of 2 minutes. Timeouts are not part of the history.
  startToCloseTimeout: '4m',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['AgentNotFound'] },
});

/**
 * Admin validation of an agent (workflow id `agent-provision-<agentId>`): the server's
 * provision_agent then activate_agent; the agent becomes ACTIVE only if both succeed, else it
 * stays PENDING_VALIDATION with the server's error.
 */
export async function agentProvision(input: AgentProvisionInput): Promise<ProvisionResult> {
  const result = await provisionAgent(input.agentId);
  await recordProvision(input.agentId, result, input.validatedBy);
  setCurrentDetails(result.ok ? '**ACTIVE**' : `**still PENDING_VALIDATION**: ${result.error}`);
  return result;
}
