import type { Actor } from '../domain/actor';
import type { AuthContext } from './auth/authenticate';
import type { HandlerContext } from './context';

/** Request metadata sessions and audit rows carry (bounded to the column sizes). */
export function requestMeta(ctx: HandlerContext): { ip: string; requestId: string; userAgent?: string } {
  return { ip: ctx.ip.slice(0, 64), requestId: ctx.state.requestId, userAgent: ctx.get('user-agent').slice(0, 500) || undefined };
}

/** The authenticated caller of this request as the domain sees it. */
export function actorOf(ctx: HandlerContext, auth: AuthContext): Actor {
  const meta = requestMeta(ctx);
  return {
    userId: auth.userId,
    organizationId: auth.organizationId,
    email: auth.email,
    ip: meta.ip,
    requestId: meta.requestId,
    via: 'api',
    ...(auth.apiKey ? { apiKey: auth.apiKey } : {}),
  };
}
