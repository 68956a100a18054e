import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  TimeoutFailure,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  TOOL_CHANGE_REFUSED,
  type ToolAction,
  type ToolChangeInput,
  type ToolChangeOutcome,
  type ToolInstallOptions,
} from './contracts/tool-install';

const { changeTool } = proxyActivities<Activities>({
  // Package managers may take minutes; the host's own limit per command is 5 minutes.
  startToCloseTimeout: '15m',
  // A lost worker is noticed within 10 s and the change retried elsewhere; the retry asks the
  // server first (check_tool), as every install does, and does not run a finished install again.
  heartbeatTimeout: '10s',
  // The activity records the final state itself: a cancel must wait for it to stop, so the
  // cancel's own record cannot be overtaken by a late INSTALLED.
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: [TOOL_CHANGE_REFUSED] },
});

const { abandonToolChange } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { initialInterval: '500ms', maximumInterval: '10s' },
});

function reasonOf(error: unknown, action: ToolAction): string {
  if (isCancellation(error)) return 'cancelled by request';
  let current: unknown = error;
  while (current instanceof ActivityFailure && current.cause) current = current.cause;
  if (current instanceof TimeoutFailure)
    return `the ${action} did not finish in time (its worker was lost or the server stopped answering)`;
  if (current instanceof ApplicationFailure) return current.message;
  return error instanceof Error ? error.message : String(error);
}

function details(action: ToolAction, outcome?: ToolChangeOutcome, version?: string): string {
  if (!outcome) return `**${action === 'install' ? 'INSTALLING' : 'REMOVING'}**${version ? ` version ${version}` : ''}`;
  const how = outcome.alreadyInstalled
    ? ' (already installed: the install command was not run)'
    : outcome.skipped
      ? ' (found done on retry)'
      : '';
  const done = `**${outcome.status}**${outcome.version ? ` ${outcome.version}` : ''}${how}`;
  return outcome.error ? `${done}\n\n${outcome.error}` : done;
}

/**
 * Installs or uninstalls a catalog tool on a server (workflow id `tool-<serverId>-<toolId>`):
 * INSTALLING (or REMOVING) → for an install, check_tool first (a tool already there at a
 * version that satisfies the request is INSTALLED at once, its install command never run) →
 * the host's install_tool (uninstall_tool) → verified with check_tool → INSTALLED with the
 * version found (NOT_INSTALLED), or FAILED with the host's log and a reason. A cancel, or a
 * change that could not finish, ends FAILED with its reason, recorded in a non-cancellable
 * scope. All of it is the one `changeTool` activity, so the workflow's commands are what they
 * were before installs checked first, and runs in flight replay unchanged (no `patched()`).
 */
export async function toolInstall(
  serverId: string,
  toolId: string,
  action: ToolAction,
  options: ToolInstallOptions = {},
): Promise<ToolChangeOutcome> {
  const { workflowId } = workflowInfo();
  const input: ToolChangeInput = { serverId, toolId, action, workflowId, ...(options.version ? { version: options.version } : {}) };
  setCurrentDetails(details(action, undefined, options.version));
  let outcome: ToolChangeOutcome;
  try {
    outcome = await changeTool(input);
  } catch (error) {
    const reason = reasonOf(error, action);
    outcome = await CancellationScope.nonCancellable(() => abandonToolChange(input, reason));
  }
  setCurrentDetails(details(action, outcome));
  return outcome;
}
