// Every workflow the worker runs; deterministic code only (no Node built-ins, api/ or entities/).
// Other layers import a workflow's contract (workflows/contracts/), never this file or a workflow body.
import type { AGENT_EXECUTION_WORKFLOW, AgentExecutionWorkflow } from './contracts/agent-execution';
import type { AGENT_PROVISION_WORKFLOW, AgentProvisionWorkflow } from './contracts/agent-provision';
import type { AGENT_RETIRE_WORKFLOW, AgentRetireWorkflow } from './contracts/agent-retire';
import type { SERVER_CHECK_WORKFLOW, SERVER_HEALTH_WORKFLOW, ServerCheckWorkflow, ServerHealthWorkflow } from './contracts/server-check';
import type { RUN_RECONCILE_WORKFLOW, RunReconcileWorkflow } from './contracts/run-reconcile';
import type { SYSTEM_CHECK_WORKFLOW, SystemCheckWorkflow } from './contracts/system-check';
import type { TASK_RUN_WORKFLOW, TaskRunWorkflow } from './contracts/task-run';
import type { TOOL_INSTALL_WORKFLOW, ToolInstallWorkflow } from './contracts/tool-install';
import type { WEBHOOK_DELIVERY_WORKFLOW, WebhookDeliveryWorkflow } from './contracts/webhook-delivery';

export * from './system-check.workflow';
export * from './server-check.workflow';
export * from './agent-execution.workflow';
export * from './agent-provision.workflow';
export * from './agent-retire.workflow';
export * from './tool-install.workflow';
export * from './task-run.workflow';
export * from './webhook-delivery.workflow';
export * from './run-reconcile.workflow';

/** Each contract's workflow, by the type name its starters use, with the signature they are typed by. */
type Contracts = Record<typeof SYSTEM_CHECK_WORKFLOW, SystemCheckWorkflow> &
  Record<typeof SERVER_CHECK_WORKFLOW, ServerCheckWorkflow> &
  Record<typeof SERVER_HEALTH_WORKFLOW, ServerHealthWorkflow> &
  Record<typeof AGENT_EXECUTION_WORKFLOW, AgentExecutionWorkflow> &
  Record<typeof AGENT_PROVISION_WORKFLOW, AgentProvisionWorkflow> &
  Record<typeof AGENT_RETIRE_WORKFLOW, AgentRetireWorkflow> &
  Record<typeof TOOL_INSTALL_WORKFLOW, ToolInstallWorkflow> &
  Record<typeof TASK_RUN_WORKFLOW, TaskRunWorkflow> &
  Record<typeof WEBHOOK_DELIVERY_WORKFLOW, WebhookDeliveryWorkflow> &
  Record<typeof RUN_RECONCILE_WORKFLOW, RunReconcileWorkflow>;

/** The contract names that no workflow is exported under here, or whose workflow's signature is not its contract's. */
type Unkept = {
  [Name in keyof Contracts]: Name extends keyof Bodies ? (Bodies[Name] extends Contracts[Name] ? never : Name) : Name;
}[keyof Contracts];
type Bodies = typeof import('./system-check.workflow') &
  typeof import('./server-check.workflow') &
  typeof import('./agent-execution.workflow') &
  typeof import('./agent-provision.workflow') &
  typeof import('./agent-retire.workflow') &
  typeof import('./tool-install.workflow') &
  typeof import('./task-run.workflow') &
  typeof import('./webhook-delivery.workflow') &
  typeof import('./run-reconcile.workflow');
type Kept<Broken extends never> = Broken;
/** A type error names each workflow whose type name or signature drifted from its contract: starts by name would then miss it. */
export type ContractsKept = Kept<Unkept>;
