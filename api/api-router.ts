import Router from '@koa/router';
import type { Middleware } from 'koa';
import type { ZodType } from 'zod';
import type { AppContext, AppContextExtras, AppState } from './context';
import { requireAuth } from './auth/authenticate';
import { AppError } from '../domain/errors';
import { ErrorSchema, type OpenAPIRegistry } from './openapi';
import { parseRequest, RequestValidationError, type Parsed, type RequestSchemas } from './validate';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteSpec<S extends RequestSchemas> {
  method: Method;
  /** Koa path under /api, e.g. `/servers/:id`. */
  path: string;
  summary: string;
  tags: string[];
  /** Requires a valid access token (401 otherwise, before any validation). */
  auth?: boolean;
  request?: S;
  responses: Record<number, { description: string; schema?: ZodType; contentType?: string }>;
  /** Middleware run before validation (rate limits, ...). */
  before?: Middleware<AppState, AppContextExtras>[];
}

export type Handler<S extends RequestSchemas> = (ctx: AppContext, input: Parsed<S>) => Promise<void> | void;

const BODY_METHODS = new Set<Method>(['post', 'put', 'patch']);

/** A chunked body has no Content-Length, and an empty one is no body at all. */
function hasBody(ctx: AppContext): boolean {
  const length = ctx.request.length;
  return length === undefined ? ctx.get('transfer-encoding') !== '' : length > 0;
}

/**
 * Registers a Koa route and its OpenAPI description from the same zod schemas, so the
 * published document cannot drift from what the handler accepts.
 */
export class ApiRouter {
  readonly router = new Router<AppState, AppContextExtras>({ prefix: '/api' });

  constructor(readonly registry: OpenAPIRegistry) {}

  route<S extends RequestSchemas>(spec: RouteSpec<S>, handler: Handler<S>): void {
    const schemas = (spec.request ?? {}) as S;
    this.register(spec, schemas);
    const run: Middleware<AppState, AppContextExtras> = async (ctx) => {
      if (spec.auth) requireAuth(ctx);
      if (schemas.body && BODY_METHODS.has(spec.method) && hasBody(ctx) && !ctx.is('application/json')) {
        throw new AppError(415, 'unsupported_media_type', 'Send the body as application/json');
      }
      let input: Parsed<S>;
      try {
        input = parseRequest(schemas, {
          body: (ctx.request as { body?: unknown }).body ?? {},
          query: ctx.query,
          params: ctx.params,
        });
      } catch (error) {
        if (error instanceof RequestValidationError) throw new AppError(400, 'validation_failed', 'Request validation failed', error.details);
        throw error;
      }
      ctx.input = input;
      await handler(ctx, input);
    };
    this.router[spec.method](spec.path, ...(spec.before ?? []), run);
  }

  private register<S extends RequestSchemas>(spec: RouteSpec<S>, schemas: S): void {
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      responses[status] = {
        description: response.description,
        ...(response.schema ? { content: { [response.contentType ?? 'application/json']: { schema: response.schema } } } : {}),
      };
    }
    responses.default = { description: 'Error', content: { 'application/json': { schema: ErrorSchema } } };
    this.registry.registerPath({
      method: spec.method,
      path: `/api${spec.path.replace(/:(\w+)/g, '{$1}')}`,
      summary: spec.summary,
      tags: spec.tags,
      security: spec.auth ? [{ bearerAuth: [] }] : undefined,
      request: {
        ...(schemas.params ? { params: schemas.params as never } : {}),
        ...(schemas.query ? { query: schemas.query as never } : {}),
        ...(schemas.body ? { body: { content: { 'application/json': { schema: schemas.body } }, required: true } } : {}),
      },
      responses: responses as never,
    });
  }
}
