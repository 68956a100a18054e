import type { Middleware } from 'koa';
import type { AppContext } from '../context';
import { AppError } from '../../domain/errors';
import { mostSpecific } from '../route-specificity';

/** What is needed of a @koa/router Router: the layers whose path matches, with their methods. */
interface RouteTable {
  match(path: string, method: string): { path: Array<{ methods: string[]; path: string | RegExp }> };
}

/**
 * Answers what no route took, in the error shape: OPTIONS on a known path → 204 with Allow, a
 * method the path does not have (TRACE, PROPFIND, ...) → 405 with Allow, anything else → 404.
 * Stands in for @koa/router's allowedMethods, which throws 501 for methods it does not know
 * and sends no Allow with its 405.
 */
export function unrouted(routers: RouteTable[]): Middleware<AppContext['state'], AppContext> {
  return async (ctx, next) => {
    await next();
    if (ctx.body !== undefined || ctx.status !== 404) return;
    const allowed = new Set<string>();
    // Only the routes that own the path: a literal path hides a parameter path beside it.
    const matched = mostSpecific(routers.flatMap((router) => router.match(ctx.path, ctx.method).path));
    for (const layer of matched) for (const method of layer.methods) allowed.add(method);
    // A route took the method but answered nothing (an unknown docs asset, say): not found.
    if (allowed.size === 0 || allowed.has(ctx.method)) throw new AppError(404, 'not_found', `No route for ${ctx.method} ${ctx.path}`);
    allowed.add('OPTIONS');
    const allow = [...allowed].sort().join(', ');
    if (ctx.method === 'OPTIONS') {
      ctx.status = 204;
      ctx.set('Allow', allow);
      return;
    }
    throw new AppError(405, 'method_not_allowed', `${ctx.method} is not allowed on ${ctx.path} (allowed: ${allow})`, undefined, {
      Allow: allow,
    });
  };
}
