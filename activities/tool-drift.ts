import type { EntityManager } from '@mikro-orm/postgresql';
import { ServerTool, ServerToolStatus } from '../entities';
import { toolCommands } from '../domain/tools/host-install';
import { setServerToolState, type ServerToolRef } from '../domain/tools/install-state';
import { ServerCallFailed } from './server-gateway';
import { checkTool, tail, type CheckAnswer, type CheckReading, type ToolDeps } from './tool-check';

/** check_tool calls in flight at once on one server during a drift check. */
const DRIFT_CONCURRENCY = 4;

export interface ToolDriftSummary {
  checked: number;
  changed: number;
  vanished: number;
  /** Installed tools the server could not be asked about (unreachable, no check_tool, an error). */
  unchecked: number;
}

/** Runs `work` over `items`, at most `limit` at a time. */
async function eachLimited<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/** check_tool's reading of each row, a few at a time on the server's one pooled connection; no reading for a row the server could not be asked about. */
async function readInstalledTools(
  { config, logger, gateway }: ToolDeps,
  serverId: string,
  rows: ServerTool[],
): Promise<Map<ServerTool, CheckReading>> {
  const readings = new Map<ServerTool, CheckReading>();
  try {
    await gateway.withServer(rows[0]!.server, ({ connection }) =>
      eachLimited(rows, DRIFT_CONCURRENCY, async (row) => {
        readings.set(
          row,
          await checkTool(config, connection.client, toolCommands(row.tool)).catch((error: unknown) => ({
            answered: false as const,
            reason: String((error as Error).message),
          })),
        );
      }),
    );
  } catch (error) {
    if (!(error instanceof ServerCallFailed)) throw error;
    logger.warn({ serverId, error: error.message }, 'drift check: server not reachable');
  }
  return readings;
}

/** Records what check_tool found of a tool recorded INSTALLED, if the row still says what it said; answers the drift it recorded. */
async function recordDrift(
  em: EntityManager,
  serverId: string,
  row: ServerTool,
  reading: CheckAnswer,
  at: Date,
): Promise<'vanished' | 'changed' | undefined> {
  const ref: ServerToolRef = { organizationId: row.organization.id, serverId, toolId: row.tool.id, toolName: row.tool.name };
  const was = row.installedVersion ?? null;
  const guard = { from: [ServerToolStatus.INSTALLED], installedVersion: was };
  const drift = (kind: string, changes: Record<string, unknown>) => ({
    action: 'server.tool_drift',
    resourceType: 'server',
    resourceId: serverId,
    changes: { toolId: row.tool.id, toolName: row.tool.name, kind, ...changes },
  });
  if (!reading.installed) {
    const reason = `vanished: the server no longer finds ${row.tool.name} (its version command fails; checked ${at.toISOString()})`;
    const done = await setServerToolState(
      em,
      ref,
      {
        status: ServerToolStatus.NOT_INSTALLED,
        installedVersion: null,
        installedAt: null,
        lastError: reason,
        logTail: tail(reading.log) || null,
        checkedAt: at,
      },
      guard,
      drift('vanished', { from: was }),
    );
    return done ? 'vanished' : undefined;
  }
  if ((reading.version ?? null) !== was) {
    const done = await setServerToolState(
      em,
      ref,
      { status: ServerToolStatus.INSTALLED, installedVersion: reading.version ?? null, checkedAt: at },
      guard,
      drift('version_changed', { from: was, to: reading.version ?? null }),
    );
    return done ? 'changed' : undefined;
  }
  await em.nativeUpdate(ServerTool, { id: row.id, status: ServerToolStatus.INSTALLED }, { checkedAt: at });
  return undefined;
}

/** The checkInstalledTools activity. */
export async function checkInstalledTools(deps: ToolDeps, serverId: string): Promise<ToolDriftSummary> {
  const { orm, logger } = deps;
  const em = orm.em.fork();
  const rows = await em.find(
    ServerTool,
    { server: serverId, status: ServerToolStatus.INSTALLED },
    { populate: ['tool', 'server', 'server.masterTokenCiphertext'] },
  );
  const summary: ToolDriftSummary = { checked: 0, changed: 0, vanished: 0, unchecked: 0 };
  if (rows.length === 0) return summary;
  const readings = await readInstalledTools(deps, serverId, rows);
  const at = new Date();
  for (const row of rows) {
    const reading = readings.get(row);
    if (!reading?.answered) {
      summary.unchecked++;
      if (reading) logger.warn({ serverId, tool: row.tool.name, reason: reading.reason }, 'drift check: no answer from check_tool');
      continue;
    }
    summary.checked++;
    const drift = await recordDrift(em, serverId, row, reading, at);
    if (drift) summary[drift]++;
  }
  return summary;
}
