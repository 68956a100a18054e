import type { ActivityDeps } from './deps';
import { createAgentActivities } from './agents.activities';
import { createDelegationActivities } from './delegation.activities';
import { createExecutionActivities } from './executions.activities';
import { createToolCallActivities } from './tool-call.activities';
import { createInputActivities } from './inputs.activities';
import { createReconcileActivities } from './reconcile.activities';
import { createServerActivities } from './servers.activities';
import { createSystemActivities } from './system.activities';
import { createToolActivities } from './tools.activities';
import { createTaskActivities } from './tasks.activities';
import { createWebhookActivities } from './webhooks.activities';

export type { ActivityDeps } from './deps';

/** Every activity of the worker, bound to its dependencies (no globals). */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createSystemActivities(deps),
    ...createServerActivities(deps),
    ...createExecutionActivities(deps),
    ...createDelegationActivities(deps),
    ...createToolCallActivities(deps),
    ...createInputActivities(deps),
    ...createAgentActivities(deps),
    ...createToolActivities(deps),
    ...createTaskActivities(deps),
    ...createWebhookActivities(deps),
    ...createReconcileActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
