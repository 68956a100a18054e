import type { DefaultContext, DefaultState, ParameterizedContext } from 'koa';
import type { Logger } from '../lib/logger';

export interface AppState extends DefaultState {
  requestId: string;
  log: Logger;
}

export interface AppContextExtras extends DefaultContext {
  /** Filled by `validate()`: the parsed, typed request. Handlers never read ctx.request.body. */
  input: { body?: unknown; query?: unknown; params?: unknown };
}

export type AppContext = ParameterizedContext<AppState, AppContextExtras>;
