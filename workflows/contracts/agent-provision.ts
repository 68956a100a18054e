/**
 * The contract of `agentProvision` (workflows/agent-provision.workflow.ts), shared by the
 * workflow, its activities and its starters; it imports nothing of the project.
 */

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const AGENT_PROVISION_WORKFLOW = 'agentProvision';

export interface AgentProvisionInput {
  agentId: string;
  validatedBy: string;
}

/** The server's answer to provision_agent + activate_agent; a refusal is a result, not a failure. */
export interface ProvisionResult {
  ok: boolean;
  error?: string;
}

/** The workflow's signature, for typed starts by type name. */
export type AgentProvisionWorkflow = (input: AgentProvisionInput) => Promise<ProvisionResult>;

export function agentProvisionWorkflowId(agentId: string): string {
  return `agent-provision-${agentId}`;
}
