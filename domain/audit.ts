import type { EntityManager } from '@mikro-orm/postgresql';
import { AuditLog, Organization, User } from '../entities';
import type { AppContext } from '../api/context';

export interface AuditEntry {
  organizationId: string;
  actorId?: string;
  actorEmail?: string;
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
    action: entry.action,
    resourceType: entry.resourceType,
    resourceId: entry.resourceId,
    changes: entry.changes,
    ip: entry.ip,
    requestId: entry.requestId,
  });
}

/** Request metadata every audit row carries (bounded to the column sizes). */
export function requestMeta(ctx: AppContext): { ip: string; requestId: string; userAgent?: string } {
  return { ip: ctx.ip.slice(0, 64), requestId: ctx.state.requestId, userAgent: ctx.get('user-agent').slice(0, 500) || undefined };
}

/** Audits a change made by the authenticated caller of this request. */
export function auditByCaller(ctx: AppContext, em: EntityManager, entry: Omit<AuditEntry, 'organizationId' | 'actorId' | 'actorEmail' | 'ip' | 'requestId'>): AuditLog {
  const auth = ctx.state.auth!;
  const meta = requestMeta(ctx);
  return recordAudit(em, { ...entry, organizationId: auth.organizationId, actorId: auth.userId, actorEmail: auth.email, ip: meta.ip, requestId: meta.requestId });
}
