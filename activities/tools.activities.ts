import { Context } from '@temporalio/activity';
import { ServerToolStatus } from '../entities';
import { setServerToolState } from '../domain/tools/install-state';
import type { ToolChangeInput, ToolChangeOutcome } from '../workflows/contracts/tool-install';
import { DatabaseWait } from './database-wait';
import type { ActivityDeps } from './deps';
import { serverGateway } from './server-gateway';
import { withActivityControl } from './run-control';
import type { ToolDeps } from './tool-check';
import { changeThroughServer, type HostOutcome } from './tool-change';
import { abandonToolChange, changeOutcome, loadChange, recordOutcome } from './tool-change-outcome';
import { checkInstalledTools, type ToolDriftSummary } from './tool-drift';

export type { ToolDriftSummary } from './tool-drift';

/**
 * The changeTool activity: the row marked busy, the change on the host, its outcome recorded.
 * Its reads and writes wait for an unavailable PostgreSQL (DatabaseWait), beating with the
 * change's MCP task id once it has one; the host's change is never sent again for that.
 */
async function changeTool(deps: ToolDeps, input: ToolChangeInput): Promise<ToolChangeOutcome> {
  const { orm, logger, config } = deps;
  const ctx = Context.current();
  // What the beats carry while nothing has reached the host: the previous attempt's MCP task
  // id, if any; after the change, its own (changeThroughServer sets it on `control`).
  let details: () => unknown = () => ctx.info.heartbeatDetails as unknown;
  const db = new DatabaseWait(config.database.outageGraceMs, () => details());
  const { server, tool, ref } = await db.run(
    () => loadChange(orm.em.fork(), input),
    `before the ${input.action} could start; nothing was sent to the server`,
  );
  const busy = input.action === 'install' ? ServerToolStatus.INSTALLING : ServerToolStatus.REMOVING;
  // Written while the host call goes out, so INSTALLING costs the install no round trip;
  // settled before anything else is written, so nothing can overtake it. Writing it again
  // after a lost answer changes nothing.
  const begun = db.run(
    () => setServerToolState(orm.em.fork(), ref, { status: busy, workflowId: input.workflowId }),
    `to mark the tool ${busy}; the ${input.action} may have reached the server meanwhile`,
  );
  let outcome: HostOutcome;
  try {
    outcome = await withActivityControl((control) => {
      details = () => control.heartbeatDetails();
      return changeThroughServer(deps, server, tool, input, control);
    });
  } finally {
    await begun.catch(() => undefined);
  }
  // A failed INSTALLING write fails the attempt; the retry asks the host before doing anything.
  await begun;
  // Guarded by the workflow's ownership of a busy row: a try after a lost commit finds the row
  // settled and writes nothing again.
  await db.run(
    () => recordOutcome(orm.em.fork(), ref, tool, input, outcome),
    `to record the ${input.action}'s outcome (${outcome.status} on the server)`,
  );
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
