import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory } from '@temporalio/worker';
import { frames, isDatabaseError, SQL_TEXT, WITHHELD } from '../lib/logger';

/** What may replace the message of an error that must not reach the history, if it must not. */
function safeMessage(error: Error): string | undefined {
  if (isDatabaseError(error)) {
    const { code, constraint } = error as Error & { code?: unknown; constraint?: unknown };
    return `database error${typeof code === 'string' ? ` ${code}` : ''}${typeof constraint === 'string' ? ` (constraint ${constraint})` : ''}`;
  }
  return SQL_TEXT.test(error.message) ? WITHHELD : undefined;
}

/**
 * An activity's error as the workflow history may hold it. The history is kept for the
 * retention period and shown in the Web UI, and a database error's message is the statement
 * with every value inlined (emails, password hashes, tokens): such an error, or one whose
 * message or cause quotes SQL, becomes an ApplicationFailure of the same type (so retry
 * policies treat it as before) with the code and constraint only, and the stack frames without
 * their first line. Temporal's own failures, and errors that quote nothing, are left as they are.
 */
export function historySafe(error: unknown): unknown {
  if (!(error instanceof Error) || error instanceof TemporalFailure) return error;
  const message = safeMessage(error);
  const cause = message === undefined ? historySafe(error.cause) : undefined;
  if (message === undefined && cause === error.cause) return error;
  // The type the SDK would have given the original error (ensureApplicationFailure).
  const type = error.constructor?.name ?? error.name;
  const failure = ApplicationFailure.create({
    message: message ?? error.message,
    type,
    nonRetryable: false,
    cause: cause instanceof Error ? cause : undefined,
  });
  failure.stack = `${type}: ${failure.message}\n${frames(error.stack) ?? ''}`;
  return failure;
}

const inbound: ActivityInboundCallsInterceptor = {
  async execute(input, next) {
    try {
      return await next(input);
    } catch (error) {
      throw historySafe(error);
    }
  },
};

/** The worker's activity interceptor (Worker.create `interceptors.activity`). */
export const historySafeFailures: ActivityInterceptorsFactory = () => ({ inbound });
