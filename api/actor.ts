import type { EntityManager } from '@mikro-orm/postgresql';
import type { Actor } from '../domain/actor';
import { audit, type AuditEntry } from '../domain/audit';
import type { AuditLog } from '../entities';
import type { AppContext } from './context';

/** Request metadata sessions and audit rows carry (bounded to the column sizes). */
export function requestMeta(ctx: AppContext): { ip: string; requestId: string; userAgent?: string } {
  return { ip: ctx.ip.slice(0, 64), requestId: ctx.state.requestId, userAgent: ctx.get('user-agent').slice(0, 500) || undefined };
}

/** The authenticated caller of this request as the domain sees it. */
export function actorOf(ctx: AppContext): Actor {
  const auth = ctx.state.auth!;
  const meta = requestMeta(ctx);
  return { userId: auth.userId, organizationId: auth.organizationId, email: auth.email, ip: meta.ip, requestId: meta.requestId, via: 'api' };
}

/** Audits a change made by the authenticated caller of this request. */
export function auditByCaller(ctx: AppContext, em: EntityManager, entry: Omit<AuditEntry, 'organizationId' | 'actorId' | 'actorEmail' | 'ip' | 'requestId'>): AuditLog {
  return audit(em, actorOf(ctx), entry);
}
