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

/** Parses every part of a request at once, so a client sees all its mistakes in one answer. */
export function parseRequest<S extends RequestSchemas>(schemas: S, raw: { body: unknown; query: unknown; params: unknown }): Parsed<S> {
  const out: Record<string, unknown> = {};
  const details: FieldError[] = [];
  for (const part of ['params', 'query', 'body'] as const) {
    const schema = schemas[part];
    if (!schema) continue;
    const result = schema.safeParse(raw[part]);
    if (result.success) out[part] = result.data;
    else details.push(...zodDetails(result.error, part));
  }
  if (details.length > 0) throw new RequestValidationError(details);
  return out as Parsed<S>;
}
