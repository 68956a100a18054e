import type { AuditLog } from '../../../entities';

export function presentAuditLog(row: AuditLog) {
  return {
    id: row.id,
    action: row.action,
    actor: row.actor ? { id: row.actor.id, email: row.actorEmail ?? null } : row.actorEmail ? { id: null, email: row.actorEmail } : null,
    resourceType: row.resourceType,
    resourceId: row.resourceId ?? null,
    changes: row.changes ?? null,
    ip: row.ip ?? null,
    requestId: row.requestId ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}
