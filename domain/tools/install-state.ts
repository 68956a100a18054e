/**
 * The one writer of a catalog tool's state on a server (ServerTool.status and what goes with
 * it): installs, uninstalls, cancels and drift checks all change it here, under a row lock,
 * and each change that a person would notice goes out as a `server:tool` event when its
 * transaction commits.
 */
import type { EntityManager } from '@mikro-orm/postgresql';
import { ServerTool, ServerToolStatus, ToolDefinition } from '../../entities';
import type { AuditEntry } from '../audit';
import { EVENTS_CHANNEL, type ServerToolEvent } from '../events';
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

/** What the `server:tool` event says of the row. */
export interface ServerToolState {
  serverId: string;
  toolId: string;
  status: ServerToolStatus;
  installedVersion?: string | null;
  lastError?: string | null;
}

/**
 * The one builder of the `server:tool` event. setServerToolState builds its row-dependent
 * part (status, previousStatus, version, error) in SQL (EVENT_FROM_ROW below): change both.
 */
export function serverToolEvent(
  row: ServerToolState,
  toolName: string,
  organizationId: string,
  previousStatus: ServerToolStatus | null,
): ServerToolEvent {
  return {
    type: 'server:tool',
    organizationId,
    serverId: row.serverId,
    toolId: row.toolId,
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

/** server_tools' column for each field a change may set. */
const COLUMNS: Record<(typeof FIELDS)[number], string> = {
  installedVersion: 'installed_version',
  installedAt: 'installed_at',
  lastError: 'last_error',
  logTail: 'log_tail',
  workflowId: 'workflow_id',
  checkedAt: 'checked_at',
};

/**
 * The part of the `server:tool` event that comes from the row as written (serverToolEvent's
 * status, previousStatus, version and error, in SQL), over the rest built by serverToolEvent.
 */
const EVENT_FROM_ROW = `jsonb_build_object(
  'status', status, 'previousStatus', previous_status, 'version', installed_version,
  'error', case when status in ('${ServerToolStatus.FAILED}', '${ServerToolStatus.NOT_INSTALLED}') then last_error end)`;

/** What the statement answers: the row as written (when the guard held), and what it was. */
interface WrittenRow extends Record<string, unknown> {
  existed: boolean;
  notices: string;
  id: string | null;
  previous_status: ServerToolStatus | null;
  previous_version: string | null;
  announced: boolean | null;
}

/**
 * The change as ONE statement: it locks the row, checks the guard on the locked (latest)
 * version, updates it, inserts the audit row and sends the event (pg_notify, delivered when
 * the statement's transaction commits) only if the guard held and the status, version or
 * error changed. Outside a transaction that is one round trip, committed on its own: an
 * install's last write no longer waits on BEGIN, SELECT … FOR UPDATE, UPDATE, INSERT,
 * NOTIFY and COMMIT one after another. The lock is taken in `locked` and the guard read from
 * it, not from the UPDATE's own snapshot: a writer that waited for the lock sees the row as
 * the other one left it (no lost update, and a stale attempt's guard fails).
 */
async function writeState(
  em: EntityManager,
  ref: ServerToolRef,
  change: ServerToolChange,
  guard: ServerToolGuard,
  audit: ServerToolAudit | undefined,
  note: ServerToolNote | undefined,
): Promise<WrittenRow> {
  const params: unknown[] = [ref.serverId, ref.toolId];
  const given = FIELDS.filter((field) => change[field] !== undefined);
  const sets = ['status = ?', 'updated_at = now()'];
  params.push(change.status);
  for (const field of given) {
    sets.push(`${COLUMNS[field]} = ?`);
    params.push(change[field]);
  }
  const conditions = ['t.id = locked.id'];
  if (guard.from) {
    conditions.push(`locked.status in (${guard.from.map(() => '?').join(', ')})`);
    params.push(...guard.from);
  }
  if (guard.workflowId !== undefined) {
    conditions.push('locked.workflow_id = ?');
    params.push(guard.workflowId);
  }
  if (guard.installedVersion !== undefined) {
    conditions.push('locked.installed_version is not distinct from ?');
    params.push(guard.installedVersion);
  }
  // A tool's first change on the server, when its guard holds for a tool without a row (which
  // reads NOT_INSTALLED): the row is inserted as changed. A first writer that loses the race
  // to insert inserts nothing; setServerToolState then runs the statement again.
  let inserted = '';
  if (guardHolds(null, guard)) {
    inserted = `, inserted as (
      insert into server_tools (id, created_at, updated_at, organization_id, server_id, tool_id, status${given.map((f) => `, ${COLUMNS[f]}`).join('')})
      select gen_random_uuid(), now(), now(), ?, ?, ?, ?${', ?'.repeat(given.length)} where not exists (select 1 from locked)
      on conflict (server_id, tool_id) do nothing
      returning *, '${ServerToolStatus.NOT_INSTALLED}'::text as previous_status, null::text as previous_version,
        (status::text, installed_version::text, last_error) is distinct from ('${ServerToolStatus.NOT_INSTALLED}'::text, null::text, null::text) as announced)`;
    params.push(ref.organizationId, ref.serverId, ref.toolId, change.status, ...given.map((f) => change[f]));
  }
  const changed = `, changed as (select * from written${inserted ? ' union all select * from inserted' : ''})`;
  let audited = '';
  if (audit) {
    // recordAudit's row (entities/audit-log.entity.ts), written by the statement so it exists only if the change does.
    audited = `, audited as (
      insert into audit_logs (id, created_at, organization_id, actor_id, actor_email, actor_api_key, action, resource_type, resource_id, changes, ip, request_id)
      select gen_random_uuid(), now(), ?, ?, ?, ?::jsonb, ?, ?, ?, ?::jsonb, ?, ? from changed)`;
    params.push(
      ref.organizationId,
      audit.actorId ?? null,
      audit.actorEmail ?? null,
      audit.actorApiKey ? JSON.stringify(audit.actorApiKey) : null,
      audit.action,
      audit.resourceType,
      audit.resourceId ?? null,
      audit.changes ? JSON.stringify(audit.changes) : null,
      audit.ip ?? null,
      audit.requestId ?? null,
    );
  }
  // Everything of the event but what the row says; a missing tool name is read with the rest.
  const {
    status: _s,
    previousStatus: _p,
    version: _v,
    error: _e,
    ...fixed
  } = serverToolEvent({ serverId: ref.serverId, toolId: ref.toolId, status: change.status }, ref.toolName ?? '', ref.organizationId, null);
  const toolName = ref.toolName === undefined ? ` || jsonb_build_object('toolName', (select name from tool_definitions where id = ?))` : '';
  params.push(EVENTS_CHANNEL, JSON.stringify({ ...fixed, ...note }));
  if (ref.toolName === undefined) params.push(ref.toolId);
  const rows = await em.execute<WrittenRow[]>(
    `with locked as (
       select id, status, installed_version, last_error, workflow_id from server_tools
       where server_id = ? and tool_id = ? for update
     ), written as (
       update server_tools t set ${sets.join(', ')}
       from locked where ${conditions.join(' and ')}
       returning t.*, locked.status as previous_status, locked.installed_version as previous_version,
         (locked.status, locked.installed_version, locked.last_error) is distinct from (t.status, t.installed_version, t.last_error) as announced
     )${inserted}${changed}${audited}, notified as (
       select pg_notify(?, (?::jsonb${toolName} || ${EVENT_FROM_ROW})::text) from changed where announced
     )
     select exists (select 1 from locked) as existed, (select count(*) from notified) as notices, changed.*
     from (select 1) as one left join changed on true`,
    params,
  );
  return rows[0]!;
}

/**
 * Applies `change` to the tool's row on the server (creating the row on first use) when
 * `guard` holds, with `audit` when given, and announces it (with `note`): all of it in one
 * statement (writeState), so one round trip (two when a concurrent first writer won the insert). Returns null when the guard failed (nothing
 * written). A drift that is announced also goes to the webhook outbox, in a transaction with
 * the statement.
 */
export async function setServerToolState(
  em: EntityManager,
  ref: ServerToolRef,
  change: ServerToolChange,
  guard: ServerToolGuard = {},
  audit?: ServerToolAudit,
  note?: ServerToolNote,
): Promise<ServerToolStateChange | null> {
  if (audit?.action === 'server.tool_drift')
    return em.transactional(async (tx) => {
      const done = await applyState(tx, ref, change, guard, audit, note);
      // A drift check found the tool changed under us (version moved, or gone): operators are told.
      if (done?.announced)
        await recordWebhookEvent(tx, {
          id: `tool.drift:${done.row.id}:${(change.checkedAt ?? new Date()).toISOString()}`,
          type: 'tool.drift',
          organizationId: ref.organizationId,
          at: new Date(),
          data: {
            serverId: ref.serverId,
            toolId: ref.toolId,
            toolName: ref.toolName ?? (await tx.findOneOrFail(ToolDefinition, ref.toolId, { fields: ['name'] })).name,
            status: done.row.status,
            previousVersion: done.previousVersion,
            version: done.row.installedVersion ?? null,
            reason: typeof audit.changes?.kind === 'string' ? audit.changes.kind : null,
            link: `/api/tools/server/${ref.serverId}/${ref.toolId}`,
          },
        });
      return done;
    });
  return applyState(em, ref, change, guard, audit, note);
}

async function applyState(
  em: EntityManager,
  ref: ServerToolRef,
  change: ServerToolChange,
  guard: ServerToolGuard,
  audit: ServerToolAudit | undefined,
  note: ServerToolNote | undefined,
): Promise<ServerToolStateChange | null> {
  let written = await writeState(em, ref, change, guard, audit, note);
  // Another first writer inserted the row while this statement tried to: it is committed now
  // (the insert waited for it), so the statement again changes it like any other.
  if (!written.id && !written.existed && guardHolds(null, guard)) written = await writeState(em, ref, change, guard, audit, note);
  if (!written.id) return null;
  const { existed: _existed, notices: _notices, previous_status, previous_version, announced, ...columns } = written;
  const row = em.map(ServerTool, columns);
  return { row, previousStatus: previous_status!, previousVersion: previous_version, announced: announced === true };
}
