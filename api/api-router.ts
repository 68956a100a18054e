import Router from '@koa/router';
import type { Middleware } from 'koa';
import type { ZodType } from 'zod';
import type { AppContext, AppContextExtras, AppState } from './context';
import { requireAuth } from './auth/authenticate';
import { AppError } from '../domain/errors';
import { ErrorSchema, type OpenAPIRegistry } from './openapi';
import { parseRequest, RequestValidationError, type Parsed, type RequestSchemas } from './validate';
import { shadowed } from './route-specificity';

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
    const chain = [...(spec.before ?? []), run];
    const pattern = { path: `/api${spec.path}` };
    const gate: Middleware<AppState, AppContextExtras> = (ctx, next) => {
      // A literal path beside this one owns what it matches (see route-specificity.ts): left to
      // the 405 of what no route took.
      if (spec.path.includes(':') && shadowed(pattern, this.router.match(ctx.path, ctx.method).path)) return next();
      const step = (i: number): Promise<void> => (i < chain.length ? Promise.resolve(chain[i]!(ctx, () => step(i + 1))) : next());
      return step(0);
    };
    this.router[spec.method](spec.path, gate);
  }

  private register<S extends RequestSchemas>(spec: RouteSpec<S>, schemas: S): void {
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      // An error a route names (a 409 with its code, say) has the error body like any other.
      const schema = response.schema ?? (Number(status) >= 400 ? ErrorSchema : undefined);
      responses[status] = {
        description: response.description,
        ...(schema ? { content: { [response.contentType ?? 'application/json']: { schema } } } : {}),
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
