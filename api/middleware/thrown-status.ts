/**
 * The status Koa sends for an error that left every middleware: the error's own 4xx/5xx
 * status, else 500. The outer middlewares (request log, metrics, server span) record it.
 */
export function thrownStatus(error: unknown): number {
  const own = (error as { status?: unknown } | undefined)?.status;
  return typeof own === 'number' && own >= 400 && own < 600 ? own : 500;
}
