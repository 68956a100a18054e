import { proxyActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';

/** The server's answer to provision_agent + activate_agent; a refusal is a result, not a failure. */
export interface ProvisionResult {
  ok: boolean;
  error?: string;
}

export function agentProvisionWorkflowId(agentId: string): string {
  return `agent-provision-${agentId}`;
}

const { provisionAgent, recordProvision } = proxyActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['AgentNotFound'] },
});

/**
 * Admin validation of an agent (workflow id `agent-provision-<agentId>`): the server's
 * provision_agent then activate_agent; the agent becomes ACTIVE only if both succeed, else it
 * stays PENDING_VALIDATION with the server's error.
 */
export async function agentProvision(input: { agentId: string; validatedBy: string }): Promise<ProvisionResult> {
  const result = await provisionAgent(input.agentId);
  await recordProvision(input.agentId, result, input.validatedBy);
  setCurrentDetails(result.ok ? '**ACTIVE**' : `**still PENDING_VALIDATION**: ${result.error}`);
  return result;
}
