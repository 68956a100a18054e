/**
 * Which route a path belongs to when a literal path and a parameter path both match it:
 * `/tasks/preview-schedule` and `/tasks/:id`, `/tools/server/:serverId/install` and
 * `/tools/server/:serverId/:toolId`. The literal one owns the path for every method, so a
 * method only the parameter path has (PUT on preview-schedule) is a 405 naming the literal
 * path's methods, never that route's 400 about a parameter the client did not mean to send.
 */

/** A matched route, as @koa/router's layers give it. */
export interface PathPattern {
  path: string | RegExp;
}

function segments(pattern: PathPattern): string[] | undefined {
  return typeof pattern.path === 'string' ? pattern.path.split('/') : undefined;
}

/** True when `a` is more specific than `b`: same shape, a literal wherever `b` has one, and at least one more. */
function moreSpecific(a: PathPattern, b: PathPattern): boolean {
  const sa = segments(a);
  const sb = segments(b);
  if (!sa || !sb || sa.length !== sb.length) return false;
  let strictly = false;
  for (let i = 0; i < sa.length; i++) {
    const aParam = sa[i]!.startsWith(':');
    const bParam = sb[i]!.startsWith(':');
    if (aParam && !bParam) return false;
    if (!aParam && bParam) strictly = true;
  }
  return strictly;
}

/** The patterns among `matched` (all matching one path) that no other one is more specific than. */
export function mostSpecific<P extends PathPattern>(matched: P[]): P[] {
  return matched.filter((candidate) => !matched.some((other) => moreSpecific(other, candidate)));
}

/** Whether another pattern matching the same path owns it (`mine` yields to it). */
export function shadowed(mine: PathPattern, matched: PathPattern[]): boolean {
  return matched.some((other) => moreSpecific(other, mine));
}
