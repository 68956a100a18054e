/**
 * The contract of `agentRetire` (workflows/agent-retire.workflow.ts), shared by the workflow,
 * its activities, the domain layer and the tests; it imports nothing of the project.
 */

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const AGENT_RETIRE_WORKFLOW = 'agentRetire';

/** A deleted agent, as it was: its row is gone by the time the workflow runs. */
export interface AgentRetireInput {
  agentId: string;
  agentName: string;
  serverId: string;
  organizationId: string;
}

/** Whether the host removed the agent and its workspace; a refusal or a server gone is a result, not a failure. */
export interface RetireResult {
  removed: boolean;
  error?: string;
}

/** The workflow's signature, for typed starts by type name. */
export type AgentRetireWorkflow = (input: AgentRetireInput) => Promise<RetireResult>;

export function agentRetireWorkflowId(agentId: string): string {
  return `agent-retire-${agentId}`;
}
