import { z, ZodError, type ZodType } from 'zod';

export interface FieldError {
  path: string;
  message: string;
  code: string;
}

/** Field-level details for a 400: `[{path: "body.email", message, code}]`. */
export function zodDetails(error: ZodError, prefix?: string): FieldError[] {
  return error.issues.map((issue) => ({
    path: [prefix, ...issue.path.map(String)].filter(Boolean).join('.') || (prefix ?? ''),
    message: issue.message,
    code: issue.code,
  }));
}

export interface RequestSchemas {
  body?: ZodType;
  query?: ZodType;
  params?: ZodType;
}

export type Parsed<S extends RequestSchemas> = {
  body: S['body'] extends ZodType ? z.output<S['body']> : undefined;
  query: S['query'] extends ZodType ? z.output<S['query']> : undefined;
  params: S['params'] extends ZodType ? z.output<S['params']> : undefined;
};

export class RequestValidationError extends Error {
  constructor(readonly details: FieldError[]) {
    super('Request validation failed');
  }
}

/**
 * The same rule as JSON Schema patterns, for the published document (api/openapi.ts): a
 * character other than NUL, or a surrogate pair. Written so that it holds with or without
 * the `u` flag (a pair is two code units without it, one code point with it).
 */
const STORABLE_CHAR = '(?:[^\\u0000\\uD800-\\uDFFF]|[\\uD800-\\uDBFF][\\uDC00-\\uDFFF])';
export const STORABLE_TEXT_PATTERN = `^${STORABLE_CHAR}*$`;
/** Storable, and not white space only: what `.trim().min(1)` and "must not be blank" take. */
export const NON_BLANK_TEXT_PATTERN = `^(?=[\\s\\S]*\\S)${STORABLE_CHAR}*$`;
/** Storable, without white space anywhere (a token). */
export const TOKEN_PATTERN = '^(?:[^\\s\\u0000\\uD800-\\uDFFF]|[\\uD800-\\uDBFF][\\uDC00-\\uDFFF])+$';

/** How deep objects and arrays may nest in one request part; the part itself is level 1. */
export const MAX_JSON_DEPTH = 32;
/** A hostile body can hold thousands of bad strings; the first few tell the client enough. */
const MAX_REPORTED = 20;

// PostgreSQL refuses NUL in text and jsonb, and a lone UTF-16 surrogate either breaks jsonb
// or is silently turned into U+FFFD on the way to a text column.
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, 'g');

function unstorable(text: string): string | undefined {
  const found = UNSTORABLE.exec(text)?.[0];
  if (found === undefined) return undefined;
  return found === '\u0000' ? 'must not contain NUL (\\u0000)' : 'must be valid Unicode: it holds a lone surrogate';
}

/** A key as it can be shown back: the characters that made it unstorable escaped. */
function printable(key: string): string {
  return key.replace(UNSTORABLE_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * The one rule every request string obeys, whatever its schema says (a `z.unknown()` context,
 * a record key, a query filter): no NUL, no lone surrogate, and no nesting past
 * MAX_JSON_DEPTH. Walked without recursion, before zod, whose own recursion a 5,000-level
 * value would overflow.
 */
export function storableProblems(value: unknown, prefix: string): FieldError[] {
  const problems: FieldError[] = [];
  const pending: Array<{ value: unknown; path: string[]; depth: number }> = [{ value, path: [], depth: 1 }];
  const at = (path: string[]) => [prefix, ...path].join('.');
  while (pending.length > 0 && problems.length < MAX_REPORTED) {
    const next = pending.pop()!;
    if (typeof next.value === 'string') {
      const message = unstorable(next.value);
      if (message) problems.push({ path: at(next.path), message, code: 'invalid_string' });
      continue;
    }
    if (next.value === null || typeof next.value !== 'object') continue;
    if (next.depth > MAX_JSON_DEPTH) {
      problems.push({ path: at(next.path), message: `nested deeper than ${MAX_JSON_DEPTH} levels`, code: 'too_deep' });
      continue;
    }
    const isArray = Array.isArray(next.value);
    const entries = isArray ? (next.value as unknown[]).map((v, i) => [String(i), v] as const) : Object.entries(next.value);
    // Pushed in reverse so siblings are visited in document order.
    for (let i = entries.length - 1; i >= 0; i--) {
      const [key, child] = entries[i]!;
      const keyMessage = isArray ? undefined : unstorable(key);
      if (keyMessage) {
        problems.push({ path: at([...next.path, printable(key)]), message: `key ${keyMessage}`, code: 'invalid_key' });
        continue;
      }
      pending.push({ value: child, path: [...next.path, key], depth: next.depth + 1 });
    }
  }
  return problems;
}

/** Parses every part of a request at once, so a client sees all its mistakes in one answer. */
export function parseRequest<S extends RequestSchemas>(schemas: S, raw: { body: unknown; query: unknown; params: unknown }): Parsed<S> {
  const out: Record<string, unknown> = {};
  const details: FieldError[] = [];
  for (const part of ['params', 'query', 'body'] as const) {
    const schema = schemas[part];
    if (!schema) continue;
    const problems = storableProblems(raw[part], part);
    if (problems.length > 0) {
      details.push(...problems);
      continue;
    }
    const result = schema.safeParse(raw[part]);
    if (result.success) out[part] = result.data;
    else details.push(...zodDetails(result.error, part));
  }
  if (details.length > 0) throw new RequestValidationError(details);
  return out as Parsed<S>;
}
