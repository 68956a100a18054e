import type { DefaultContext, ParameterizedContext } from 'koa';
import type { Logger } from '../lib/logger';
import type { AuthState } from './auth/authenticate';

/** What the request logger leaves on every request's state. */
export interface RequestState {
  requestId: string;
  log: Logger;
}

export interface AppState extends AuthState, RequestState {}

export interface AppContextExtras extends DefaultContext {
  /** Filled by `validate()`: the parsed, typed request. Handlers never read ctx.request.body. */
  input: { body?: unknown; query?: unknown; params?: unknown };
}

export type AppContext = ParameterizedContext<AppState, AppContextExtras>;

/**
 * Koa's context as a route handler sees it (api/api-router.ts): the request and the response,
 * without the state the middleware left; the caller comes to an authenticated handler as its
 * typed `auth`, so a public handler has none to read.
 */
export type HandlerContext = ParameterizedContext<RequestState, AppContextExtras>;
