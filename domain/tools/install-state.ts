/**
 * The one writer of a catalog tool's state on a server (ServerTool.status and what goes with
 * it): installs, uninstalls, cancels and drift checks all change it here, under a row lock,
 * and each change that a person would notice goes out as a `server:tool` event when its
 * transaction commits.
 */
import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { ServerTool, ServerToolStatus, ToolDefinition } from '../../entities';
import { recordAudit, type AuditEntry } from '../audit';
import { publishEventOnCommit, type ServerToolEvent } from '../events';
import { recordWebhookEvent } from '../webhooks/outbox';

export interface ServerToolRef {
  organizationId: string;
  serverId: string;
  toolId: string;
  /** For the event; read from the catalog when not given. */
  toolName?: string;
}

/** The fields to set; `undefined` keeps a field, `null` clears it. */
export interface ServerToolChange {
  status: ServerToolStatus;
  installedVersion?: string | null;
  installedAt?: Date | null;
  lastError?: string | null;
  logTail?: string | null;
  workflowId?: string | null;
  checkedAt?: Date | null;
}

/** When the change applies; a change whose guard fails is not made (and announces nothing). */
export interface ServerToolGuard {
  /** Only from one of these statuses; a tool without a row is NOT_INSTALLED. */
  from?: readonly ServerToolStatus[];
  /** Only while this workflow owns the row (its latest install or uninstall). */
  workflowId?: string;
  /** Only while the recorded version is still this one (a drift check's reading). */
  installedVersion?: string | null;
}

export interface ServerToolStateChange {
  row: ServerTool;
  previousStatus: ServerToolStatus;
  previousVersion: string | null;
  /** Whether a `server:tool` event went out (the status, the version or the error changed). */
  announced: boolean;
}

/** In-progress states: a workflow owns the row until it leaves them. */
export const BUSY_STATUSES: readonly ServerToolStatus[] = [ServerToolStatus.INSTALLING, ServerToolStatus.REMOVING];

/** Where an install, an uninstall or a drift check can end. */
export const SETTLED_STATUSES: readonly ServerToolStatus[] = [
  ServerToolStatus.NOT_INSTALLED,
  ServerToolStatus.INSTALLED,
  ServerToolStatus.FAILED,
];

const FIELDS = ['installedVersion', 'installedAt', 'lastError', 'logTail', 'workflowId', 'checkedAt'] as const;

function guardHolds(row: ServerTool | null, guard: ServerToolGuard): boolean {
  const status = row?.status ?? ServerToolStatus.NOT_INSTALLED;
  if (guard.from && !guard.from.includes(status)) return false;
  if (guard.workflowId !== undefined && row?.workflowId !== guard.workflowId) return false;
  if (guard.installedVersion !== undefined && (row?.installedVersion ?? null) !== guard.installedVersion) return false;
  return true;
}

/** The one builder of the `server:tool` event. */
export function serverToolEvent(
  row: ServerTool,
  toolName: string,
  organizationId: string,
  previousStatus: ServerToolStatus | null,
): ServerToolEvent {
  return {
    type: 'server:tool',
    organizationId,
    serverId: row.server.id,
    toolId: row.tool.id,
    toolName,
    status: row.status,
    previousStatus,
    version: row.installedVersion ?? null,
    error: row.status === ServerToolStatus.FAILED || row.status === ServerToolStatus.NOT_INSTALLED ? (row.lastError ?? null) : null,
    at: new Date().toISOString(),
  };
}

/** An audit row written with the change, in its transaction (its organisation is the tool's). */
export type ServerToolAudit = Omit<AuditEntry, 'organizationId'>;

/** What the event says beyond the row. */
export type ServerToolNote = Pick<ServerToolEvent, 'alreadyInstalled'>;

/**
 * Applies `change` to the tool's row on the server (creating the row on first use) when
 * `guard` holds, in one transaction with the row locked, with `audit` when given, and
 * announces it (with `note`). Returns null when the guard failed (nothing written).
 */
export async function setServerToolState(
  em: EntityManager,
  ref: ServerToolRef,
  change: ServerToolChange,
  guard: ServerToolGuard = {},
  audit?: ServerToolAudit,
  note?: ServerToolNote,
): Promise<ServerToolStateChange | null> {
  return em.transactional(async (tx) => {
    const where = { server: ref.serverId, tool: ref.toolId };
    let row = await tx.findOne(ServerTool, where, { lockMode: LockMode.PESSIMISTIC_WRITE });
    if (!guardHolds(row, guard)) return null;
    if (!row) {
      // Concurrent first writers: one inserts, the other waits on the lock below and sees its row.
      await tx.execute(
        `insert into server_tools (id, created_at, updated_at, organization_id, server_id, tool_id, status)
         values (gen_random_uuid(), now(), now(), ?, ?, ?, ?) on conflict (server_id, tool_id) do nothing`,
        [ref.organizationId, ref.serverId, ref.toolId, ServerToolStatus.NOT_INSTALLED],
      );
      row = await tx.findOneOrFail(ServerTool, where, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
      if (!guardHolds(row, guard)) return null;
    }
    const previousStatus = row.status;
    const previousVersion = row.installedVersion ?? null;
    const previousError = row.lastError ?? null;
    row.status = change.status;
    for (const field of FIELDS) {
      const value = change[field];
      // null is written as NULL; the entity's optional fields read it back as null too.
      if (value !== undefined) (row as unknown as Record<string, unknown>)[field] = value;
    }
    if (audit) recordAudit(tx, { ...audit, organizationId: ref.organizationId });
    await tx.flush();
    const announced =
      previousStatus !== row.status || previousVersion !== (row.installedVersion ?? null) || previousError !== (row.lastError ?? null);
    if (announced) {
      const toolName = ref.toolName ?? (await tx.findOneOrFail(ToolDefinition, ref.toolId, { fields: ['name'] })).name;
      await publishEventOnCommit(tx, { ...serverToolEvent(row, toolName, ref.organizationId, previousStatus), ...note });
      // A drift check found the tool changed under us (version moved, or gone): operators are told.
      if (audit?.action === 'server.tool_drift')
        await recordWebhookEvent(tx, {
          id: `tool.drift:${row.id}:${(change.checkedAt ?? new Date()).toISOString()}`,
          type: 'tool.drift',
          organizationId: ref.organizationId,
          at: new Date(),
          data: {
            serverId: ref.serverId,
            toolId: ref.toolId,
            toolName,
            status: row.status,
            previousVersion,
            version: row.installedVersion ?? null,
            reason: typeof audit.changes?.kind === 'string' ? audit.changes.kind : null,
            link: `/api/tools/server/${ref.serverId}/${ref.toolId}`,
          },
        });
    }
    return { row, previousStatus, previousVersion, announced };
  });
}
