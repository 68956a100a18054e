import { Context } from '@temporalio/activity';
import { ServerToolStatus } from '../entities';
import { setServerToolState } from '../domain/tools/install-state';
import type { ToolChangeInput, ToolChangeOutcome } from '../workflows/contracts/tool-install';
import type { ActivityDeps } from './deps';
import { serverGateway } from './server-gateway';
import { withActivityControl } from './run-control';
import type { ToolDeps } from './tool-check';
import { changeThroughServer, type HostOutcome } from './tool-change';
import { abandonToolChange, changeOutcome, loadChange, recordOutcome } from './tool-change-outcome';
import { checkInstalledTools, type ToolDriftSummary } from './tool-drift';

export type { ToolDriftSummary } from './tool-drift';

/** The changeTool activity: the row marked busy, the change on the host, its outcome recorded. */
async function changeTool(deps: ToolDeps, input: ToolChangeInput): Promise<ToolChangeOutcome> {
  const { orm, logger } = deps;
  const ctx = Context.current();
  const em = orm.em.fork();
  const { server, tool, ref } = await loadChange(em, input);
  const busy = input.action === 'install' ? ServerToolStatus.INSTALLING : ServerToolStatus.REMOVING;
  // Written while the host call goes out, so INSTALLING costs the install no round trip;
  // settled before anything else is written, so nothing can overtake it.
  const begun = setServerToolState(orm.em.fork(), ref, { status: busy, workflowId: input.workflowId });
  let outcome: HostOutcome;
  try {
    outcome = await withActivityControl((control) => changeThroughServer(deps, server, tool, input, control));
  } finally {
    await begun.catch(() => undefined);
  }
  // A failed INSTALLING write fails the attempt; the retry asks the host before doing anything.
  await begun;
  await recordOutcome(em, ref, tool, input, outcome);
  logger.info(
    {
      serverId: input.serverId,
      toolId: input.toolId,
      action: input.action,
      status: outcome.status,
      attempt: ctx.info.attempt,
      ...(outcome.alreadyInstalled ? { alreadyInstalled: true } : {}),
    },
    'tool change finished',
  );
  return changeOutcome(outcome);
}

export function createToolActivities(deps: ActivityDeps) {
  const { orm, config, logger } = deps;
  const toolDeps: ToolDeps = { orm, config, logger, gateway: serverGateway(deps) };

  return {
    /**
     * One install or uninstall on the host, recorded on the tool's row from start (INSTALLING,
     * REMOVING) to end. Heartbeats every second, so a Temporal cancel reaches it and aborts the
     * MCP call (the SDK sends notifications/cancelled, the host stops the command).
     */
    changeTool(input: ToolChangeInput): Promise<ToolChangeOutcome> {
      return changeTool(toolDeps, input);
    },

    /**
     * A change that ended without recording its outcome (cancelled, or out of attempts): FAILED
     * with the reason, if its workflow still owns the row. Otherwise the row says how it ended.
     */
    abandonToolChange(input: ToolChangeInput, reason: string): Promise<ToolChangeOutcome> {
      return abandonToolChange(orm.em.fork(), input, reason);
    },

    /**
     * Drift: asks the server about each tool recorded INSTALLED on it (check_tool, a few at a
     * time on its one pooled connection) and records a tool that vanished (NOT_INSTALLED, with
     * the reason) or whose version changed, each with its event and an audit row.
     */
    checkInstalledTools(serverId: string): Promise<ToolDriftSummary> {
      return checkInstalledTools(toolDeps, serverId);
    },
  };
}
