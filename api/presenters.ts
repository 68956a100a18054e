import type { AuditLog, Organization, User } from '../entities';

/** Presenters decide what leaves the process: never password hashes, tokens or ciphertexts. */

export function presentOrganization(org: Organization) {
  return { id: org.id, name: org.name, slug: org.slug, createdAt: org.createdAt.toISOString() };
}

export function presentUser(user: User) {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    organizationId: user.organization.id,
    lastLoginAt: user.lastLoginAt?.toISOString() ?? null,
    createdAt: user.createdAt.toISOString(),
    updatedAt: user.updatedAt.toISOString(),
  };
}

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
