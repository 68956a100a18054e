import type { EntityManager } from '@mikro-orm/postgresql';
import { AuditLog, Organization, User, type AuditApiKey } from '../entities';
import type { Actor } from './actor';

export interface AuditEntry {
  organizationId: string;
  actorId?: string;
  actorEmail?: string;
  actorApiKey?: AuditApiKey;
  action: string;
  resourceType: string;
  resourceId?: string;
  /** What changed; callers pass field names and non-secret values only. */
  changes?: Record<string, unknown>;
  ip?: string;
  requestId?: string;
}

/**
 * The one writer of audit rows. The row joins the caller's unit of work, so it is committed
 * with the change it describes (or not at all).
 */
export function recordAudit(em: EntityManager, entry: AuditEntry): AuditLog {
  return em.create(AuditLog, {
    organization: em.getReference(Organization, entry.organizationId),
    actor: entry.actorId ? em.getReference(User, entry.actorId) : undefined,
    actorEmail: entry.actorEmail,
    actorApiKey: entry.actorApiKey,
    action: entry.action,
    resourceType: entry.resourceType,
    resourceId: entry.resourceId,
    changes: entry.changes,
    ip: entry.ip,
    requestId: entry.requestId,
  });
}

/** Audits a change made by `actor`, in the unit of work of the change. */
export function audit(
  em: EntityManager,
  actor: Actor,
  entry: Omit<AuditEntry, 'organizationId' | 'actorId' | 'actorEmail' | 'actorApiKey' | 'ip' | 'requestId'>,
): AuditLog {
  return recordAudit(em, {
    ...entry,
    organizationId: actor.organizationId,
    actorId: actor.userId,
    actorEmail: actor.email,
    actorApiKey: actor.apiKey,
    ip: actor.ip,
    requestId: actor.requestId,
  });
}
