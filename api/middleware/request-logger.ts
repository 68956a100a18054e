import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from '../../lib/logger';
import type { AppContext } from '../context';
import { thrownStatus } from './thrown-status';

const SAFE_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Gives every request an id (the caller's X-Request-Id when sane), a child logger, and one log
 * line with the status that was sent. It is the outermost middleware: inside it, the error
 * handler has turned any failure into its answer by the time the line is written.
 */
export function requestLogger(logger: Logger): Middleware<AppContext['state'], AppContext> {
  return async (ctx, next) => {
    const incoming = ctx.get('x-request-id');
    const requestId = SAFE_REQUEST_ID.test(incoming) ? incoming : randomUUID();
    ctx.state.requestId = requestId;
    ctx.state.log = logger.child({ requestId });
    ctx.set('X-Request-Id', requestId);
    const started = process.hrtime.bigint();
    let status: number | undefined;
    try {
      await next();
    } catch (error) {
      status = thrownStatus(error);
      throw error;
    } finally {
      status ??= ctx.status;
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
      ctx.state.log[level]({ method: ctx.method, path: ctx.path, status, ms: Math.round(ms * 10) / 10 }, 'request');
    }
  };
}
