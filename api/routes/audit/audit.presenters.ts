import type { AuditLog } from '../../../entities';

/** The key the actor acted through, only on entries made through one. */
function apiKeyOf(row: AuditLog): { apiKey?: { id: string; name: string; prefix: string } } {
  return row.actorApiKey ? { apiKey: { id: row.actorApiKey.id, name: row.actorApiKey.name, prefix: row.actorApiKey.prefix } } : {};
}

export function presentAuditLog(row: AuditLog) {
  return {
    id: row.id,
    action: row.action,
    actor: row.actor
      ? { id: row.actor.id, email: row.actorEmail ?? null, ...apiKeyOf(row) }
      : row.actorEmail
        ? { id: null, email: row.actorEmail, ...apiKeyOf(row) }
        : null,
    resourceType: row.resourceType,
    resourceId: row.resourceId ?? null,
    changes: row.changes ?? null,
    ip: row.ip ?? null,
    requestId: row.requestId ?? null,
    createdAt: row.createdAt.toISOString(),
  };
}
