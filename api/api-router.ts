import Router from '@koa/router';
import type { Middleware } from 'koa';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { ZodType } from 'zod';
import type { Actor } from '../domain/actor';
import type { Orm } from '../lib/orm';
import type { AppContext, AppContextExtras, AppState, HandlerContext } from './context';
import { actorOf } from './actor';
import { requireAuth, type AuthContext } from './auth/authenticate';
import { AppError } from '../domain/errors';
import { ErrorSchema, unavailableResponse, type OpenAPIRegistry } from './openapi';
import { parseRequest, RequestValidationError, type Parsed, type RequestSchemas } from './validate';
import { shadowed } from './route-specificity';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteSpec<S extends RequestSchemas> {
  method: Method;
  /** Koa path under /api, e.g. `/servers/:id`. */
  path: string;
  summary: string;
  tags: string[];
  request?: S;
  responses: Record<number, { description: string; schema?: ZodType; contentType?: string }>;
  /**
   * For a route that starts, signals or cancels a workflow, waits for one, or changes a
   * schedule, and so answers 503 `temporal_unavailable` while Temporal is away: what such a
   * refusal leaves behind ("nothing was saved"). The 503 of every route (`database_unavailable`,
   * and this) is written into the document from here, with Retry-After.
   */
  temporalUnavailable?: string;
  /** Middleware run before validation (rate limits, ...). */
  before?: Middleware<AppState, AppContextExtras>[];
}

/** What every handler gets beside Koa's context: the request as validated, and where to read and write rows. */
export type PublicRequest<S extends RequestSchemas> = Parsed<S> & {
  /** The request's own fork of the EntityManager (MikroORM's RequestContext, opened in api/app.ts). */
  em: EntityManager;
};

/** What the handler of an authenticated route gets besides: its caller, for CASL checks and scoping (`auth`) and for commands (`actor`). */
export type AuthedRequest<S extends RequestSchemas> = PublicRequest<S> & {
  auth: AuthContext;
  actor: Actor;
};

export type Handler<R> = (ctx: HandlerContext, request: R) => Promise<void> | void;

/** Runs first (so a 401 comes before any validation), and gives what answers the validated request. */
type Respond<S extends RequestSchemas> = (ctx: AppContext) => (request: PublicRequest<S>) => Promise<void> | void;

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

  constructor(
    readonly registry: OpenAPIRegistry,
    private readonly orm: Orm,
  ) {}

  /** A route for a caller with a valid access token (401 otherwise); its handler gets the caller, typed. */
  route<S extends RequestSchemas>(spec: RouteSpec<S>, handler: Handler<AuthedRequest<S>>): void {
    this.add(spec, true, (ctx) => {
      const auth = requireAuth(ctx);
      const actor = actorOf(ctx, auth);
      return (request) => handler(ctx, { ...request, auth, actor });
    });
  }

  /** A route open to anyone (health, login, ...): its handler has no caller to read. */
  publicRoute<S extends RequestSchemas>(spec: RouteSpec<S>, handler: Handler<PublicRequest<S>>): void {
    this.add(spec, false, (ctx) => (request) => handler(ctx, request));
  }

  private add<S extends RequestSchemas>(spec: RouteSpec<S>, authenticated: boolean, respond: Respond<S>): void {
    const schemas = (spec.request ?? {}) as S;
    this.register(spec, schemas, authenticated);
    const run: Middleware<AppState, AppContextExtras> = async (ctx) => {
      const answer = respond(ctx);
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
        if (error instanceof RequestValidationError)
          throw new AppError(400, 'validation_failed', 'Request validation failed', error.details);
        throw error;
      }
      ctx.input = input;
      // Outside any transaction the ORM's context is the request's fork, so this is that fork.
      await answer({ ...input, em: this.orm.em.getContext() });
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

  private register<S extends RequestSchemas>(spec: RouteSpec<S>, schemas: S, authenticated: boolean): void {
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(spec.responses)) {
      // An error a route names (a 409 with its code, say) has the error body like any other.
      const schema = response.schema ?? (Number(status) >= 400 ? ErrorSchema : undefined);
      responses[status] = {
        description: response.description,
        ...(schema ? { content: { [response.contentType ?? 'application/json']: { schema } } } : {}),
      };
    }
    // A route with a 503 of its own (the health check's body) keeps it.
    responses['503'] ??= unavailableResponse(spec.temporalUnavailable);
    responses.default = { description: 'Error', content: { 'application/json': { schema: ErrorSchema } } };
    this.registry.registerPath({
      method: spec.method,
      path: `/api${spec.path.replace(/:(\w+)/g, '{$1}')}`,
      summary: spec.summary,
      tags: spec.tags,
      security: authenticated ? [{ bearerAuth: [] }] : undefined,
      request: {
        ...(schemas.params ? { params: schemas.params as never } : {}),
        ...(schemas.query ? { query: schemas.query as never } : {}),
        ...(schemas.body ? { body: { content: { 'application/json': { schema: schemas.body } }, required: true } } : {}),
      },
      responses: responses as never,
    });
  }
}
