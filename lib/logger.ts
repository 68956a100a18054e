import { DriverException } from '@mikro-orm/core';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import type { Config } from './config';

export type { Logger };

/** Paths whose values never reach a log line, wherever they appear. */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'passwordHash',
  '*.passwordHash',
  'masterToken',
  '*.masterToken',
  'accessToken',
  '*.accessToken',
  'refreshToken',
  '*.refreshToken',
  'token',
  '*.token',
  // A run token in execute_prompt's arguments (`fleet`), should anything log them.
  '*.fleet.token',
  '*.*.fleet.token',
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
];

/** The fields of a PostgreSQL error that name what failed without quoting any value. */
const DATABASE_FIELDS = ['code', 'constraint', 'table', 'column', 'schema', 'dataType', 'severity', 'routine'] as const;

// MikroORM's driver messages are `<the statement with its values inlined> - <PostgreSQL's text>`,
// and PostgreSQL's own text and `detail` quote values too ("Key (email)=(...) already exists").
export const SQL_TEXT = /\b(insert\s+into|update\s+\S+\s+set|delete\s+from|select\s[\s\S]*?\sfrom)\b/i;
export const WITHHELD = '[withheld: the text quoted SQL]';

export function isDatabaseError(error: Error): boolean {
  if (error instanceof DriverException) return true;
  // pg's own DatabaseError, thrown by code that queries without the ORM.
  const fields = error as Error & { code?: unknown; severity?: unknown; routine?: unknown };
  return typeof fields.code === 'string' && typeof fields.severity === 'string' && 'routine' in fields;
}

/** Stack frames only: the first line of a stack repeats the message. */
export function frames(stack: string | undefined): string | undefined {
  return stack
    ?.split('\n')
    .filter((line) => line.trimStart().startsWith('at '))
    .join('\n');
}

/**
 * Errors as log fields. A database error keeps only its code, constraint, table and column:
 * its message holds the statement with every value (emails, password hashes, tokens). Any
 * other error keeps its message and stack unless they quote SQL, and its cause goes through
 * the same rules.
 */
export function serializeError(value: unknown, seen = new Set<unknown>()): unknown {
  if (!(value instanceof Error)) return value;
  if (seen.has(value)) return '[circular]';
  seen.add(value);
  const type = value.constructor?.name || value.name;
  if (isDatabaseError(value)) {
    const out: Record<string, unknown> = { type };
    for (const field of DATABASE_FIELDS) {
      const v = (value as unknown as Record<string, unknown>)[field];
      if (v !== undefined && v !== null) out[field] = v;
    }
    out.message = `database error${out.code ? ` ${String(out.code)}` : ''}`;
    out.stack = frames(value.stack);
    return out;
  }
  const quotesSql = SQL_TEXT.test(value.message);
  const message = quotesSql ? WITHHELD : value.message;
  const out: Record<string, unknown> = { type, message, stack: `${type}: ${message}\n${frames(value.stack) ?? ''}` };
  for (const [key, field] of Object.entries(value)) {
    if (key in out || key === 'cause') continue;
    out[key] = field instanceof Error ? serializeError(field, seen) : typeof field === 'string' && SQL_TEXT.test(field) ? WITHHELD : field;
  }
  if (value.cause !== undefined) out.cause = serializeError(value.cause, seen);
  if (value instanceof AggregateError) out.errors = value.errors.map((e) => serializeError(e, seen));
  return out;
}

/**
 * `trace_id` and `span_id` (OpenTelemetry's log-correlation names) of the span active where a
 * line is logged, so a log line leads to its trace. With tracing off no context manager is
 * registered, there is never an active span, and this is one lookup. (pino merges the line into
 * the object returned, so it is a new one each time.)
 */
export function traceFields(): Record<string, string> {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const { traceId, spanId } = span.spanContext();
  return isSpanContextValid(span.spanContext()) ? { trace_id: traceId, span_id: spanId } : {};
}

/**
 * The one logger factory (API, worker, scripts, tests). `destination` replaces stdout (and
 * the pretty transport), for tests that read what was logged.
 */
export function createLogger(
  config: { log: Omit<Config['log'], 'color'> & { color?: boolean } },
  name = 'mcp-fleet',
  destination?: DestinationStream,
): Logger {
  const options: LoggerOptions = {
    name,
    level: config.log.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // `error` too: the Temporal SDK logs a failed activity as `{ error }`.
    serializers: { err: serializeError, error: serializeError },
    mixin: traceFields,
    transport:
      config.log.pretty && !destination
        ? // Colour only where config says (a terminal): escape codes in a redirected log are noise.
          { target: 'pino-pretty', options: { colorize: config.log.color === true, translateTime: 'HH:MM:ss', ignore: 'pid,hostname' } }
        : undefined,
  };
  return destination ? pino(options, destination) : pino(options);
}
