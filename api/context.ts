import type { DefaultContext, DefaultState, ParameterizedContext } from 'koa';
import type { Logger } from '../lib/logger';
import type { AuthContext } from './auth/authenticate';

export interface AppState extends DefaultState {
  requestId: string;
  log: Logger;
  /** Set by the auth middleware when a valid, unrevoked access token came with the request. */
  auth?: AuthContext;
}

export interface AppContextExtras extends DefaultContext {
  /** Filled by `validate()`: the parsed, typed request. Handlers never read ctx.request.body. */
  input: { body?: unknown; query?: unknown; params?: unknown };
}

export type AppContext = ParameterizedContext<AppState, AppContextExtras>;
