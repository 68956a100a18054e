/**
 * The workflows as an upgrade might change them, for test/workflow-replay.test.ts: every workflow
 * as it is, but `systemCheck` waits on a timer before its activity (a new command, not behind
 * `patched()`: runs in flight would break), and `agentProvision` does the same behind `patched()`
 * (the way to change a workflow: runs recorded before take the old path).
 */
import { patched, sleep } from '@temporalio/workflow';
import { agentProvision as agentProvisionAsItIs, systemCheck as systemCheckAsItIs } from '../../workflows';
import type { AgentProvisionInput } from '../../workflows/contracts/agent-provision';

export * from '../../workflows';

export async function systemCheck(): ReturnType<typeof systemCheckAsItIs> {
  await sleep('1s');
  return systemCheckAsItIs();
}

export async function agentProvision(input: AgentProvisionInput): ReturnType<typeof agentProvisionAsItIs> {
  if (patched('replay-test-pause')) await sleep('1s');
  return agentProvisionAsItIs(input);
}
