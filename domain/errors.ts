import { UniqueConstraintViolationException } from '@mikro-orm/core';

/**
 * Retry-After of a 503 temporal_unavailable: the API's connection tries to reach a Temporal that
 * was down at least every 5 s (lib/temporal.ts), so a retry after that sees it back.
 */
export const TEMPORAL_RETRY_AFTER_SECONDS = 5;

/** The one error type handlers throw; the error middleware turns it into `{error:{code,message,details?}}`. */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
    this.name = 'AppError';
  }

  static badRequest(code: string, message: string, details?: unknown): AppError {
    return new AppError(400, code, message, details);
  }

  static notFound(resource = 'Resource'): AppError {
    return new AppError(404, 'not_found', `${resource} not found`);
  }

  static conflict(code: string, message: string, details?: unknown): AppError {
    return new AppError(409, code, message, details);
  }

  /** Temporal could not be reached or did not answer in time: a 503 the client may try again after Retry-After. */
  static temporalUnavailable(message = 'Temporal is unavailable; try again', details?: unknown): AppError {
    return new AppError(503, 'temporal_unavailable', message, details, { 'Retry-After': String(TEMPORAL_RETRY_AFTER_SECONDS) });
  }
}

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

/** A 400 for a rule no schema can express, in the same shape as the schema failures. */
export function fieldError(path: string, message: string, code = 'invalid'): AppError {
  return new AppError(400, 'validation_failed', 'Request validation failed', [{ path, message, code }]);
}

/**
 * Runs a write (a flush, a transaction); a unique violation becomes the caller's 409. Checks
 * before the write give the friendly answer; this one covers the race they can lose.
 */
export async function uniqueOrConflict<T>(write: () => Promise<T>, conflict: () => AppError): Promise<T> {
  try {
    return await write();
  } catch (error) {
    if (error instanceof UniqueConstraintViolationException) throw conflict();
    throw error;
  }
}
