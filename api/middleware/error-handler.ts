import { ForbiddenError } from '@casl/ability';
import { NotFoundError, UniqueConstraintViolationException, ForeignKeyConstraintViolationException } from '@mikro-orm/core';
import type { Middleware } from 'koa';
import { ZodError } from 'zod';
import type { AppContext } from '../context';
import { AppError, type ErrorBody } from '../../domain/errors';
import { isTemporalUnavailable } from '../../lib/temporal';
import { zodDetails } from '../validate';
import { isDatabaseUnavailable } from '../../lib/database-unavailable';
import { databaseUnavailable } from './database-unavailable';

interface HttpLikeError {
  status?: number;
  statusCode?: number;
  expose?: boolean;
  type?: string;
  message?: string;
  headers?: Record<string, string>;
}

const CODES_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'too_many_requests',
  501: 'not_implemented',
};

function toAppError(error: unknown): AppError | undefined {
  if (error instanceof AppError) return error;
  if (error instanceof ZodError) return new AppError(400, 'validation_failed', 'Request validation failed', zodDetails(error));
  if (error instanceof ForbiddenError) return new AppError(403, 'forbidden', 'You are not allowed to do this');
  if (error instanceof NotFoundError) return AppError.notFound();
  if (error instanceof UniqueConstraintViolationException)
    return new AppError(409, 'conflict', 'A resource with the same unique value already exists');
  if (error instanceof ForeignKeyConstraintViolationException)
    return new AppError(409, 'conflict', 'The resource is still referenced by others');
  // Any route that reaches Temporal (a start, a signal, a schedule, a workflow's result) while it
  // is down or stuck: the client may try again, which is not true of a 500.
  if (isTemporalUnavailable(error)) return AppError.temporalUnavailable();
  if (isDatabaseUnavailable(error)) return databaseUnavailable();
  const http = error as HttpLikeError | undefined;
  const status = http?.status ?? http?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    if (status === 400 && (http?.type === 'entity.parse.failed' || error instanceof SyntaxError))
      return new AppError(400, 'invalid_json', 'The request body is not valid JSON');
    if (status === 413) return new AppError(413, 'payload_too_large', 'The request body is too large');
    const code = CODES_BY_STATUS[status] ?? 'bad_request';
    // Only messages meant for clients (http-errors' `expose`) are passed through.
    const message = http?.expose && http.message ? http.message : code.replace(/_/g, ' ');
    return new AppError(status, code, message, undefined, http?.headers);
  }
  return undefined;
}

/**
 * Every failure leaves as `{error:{code,message,details?}}`, never a stack or SQL. Only the
 * request logger is outside it (it gives `ctx.state.log`, and logs the status set here).
 */
export function errorHandler(): Middleware<AppContext['state'], AppContext> {
  return async (ctx, next) => {
    try {
      await next();
    } catch (error) {
      const appError = toAppError(error);
      const log = ctx.state.log;
      let body: ErrorBody;
      if (appError) {
        ctx.status = appError.status;
        body = {
          error: {
            code: appError.code,
            message: appError.message,
            ...(appError.details !== undefined ? { details: appError.details } : {}),
          },
        };
        for (const [name, value] of Object.entries(appError.headers ?? {})) ctx.set(name, value);
      } else {
        ctx.status = 500;
        body = { error: { code: 'internal', message: 'Internal server error' } };
        log?.error({ err: error }, 'unhandled error');
      }
      ctx.body = body;
    }
  };
}
