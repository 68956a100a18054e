import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { AgentProvisionInput, ProvisionResult } from './contracts/agent-provision';

const { provisionAgent, recordProvision } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
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
