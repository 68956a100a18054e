import Router from '@koa/router';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { AppContext, AppContextExtras, AppState } from '../context';
import type { AppDeps } from '../deps';
import { actorOf } from '../actor';
import { requireAuth } from '../auth/authenticate';
import { AppError } from '../../domain/errors';
import { rateLimit } from '../rate-limit';
import { bearerRunToken, verifyRunToken, type RunPrincipal } from '../../domain/runs/run-token';
import { registerKeyTools, type McpCaller } from './mcp-tools';
import { registerRunTools } from './mcp-run-tools';

const SERVER_INFO = { name: 'mcp-fleet', version: '0.1.0' };

/**
 * Who may call `/mcp`: an API key (`mcpf_…`), or a running agent with its run token
 * (`mcpr_…`, domain/runs/run-token.ts). A person's access token is for the web app,
 * short-lived and refreshed, no fit for an MCP client's static header.
 */
async function mcpCaller(ctx: AppContext, deps: AppDeps): Promise<McpCaller | { run: RunPrincipal }> {
  // A run token is no JWT: the auth middleware let it through unauthenticated (koa-jwt's
  // passthrough); it is checked here, on every request, against its run's row.
  const runToken = bearerRunToken(ctx.get('authorization'));
  if (runToken) return { run: await verifyRunToken(deps.orm.em.fork(), deps.config, runToken) };
  const auth = requireAuth(ctx);
  if (!auth.apiKey)
    throw new AppError(401, 'api_key_required', 'The MCP endpoint takes an API key: Authorization: Bearer mcpf_…', undefined, {
      'WWW-Authenticate': 'Bearer',
    });
  return { auth, actor: actorOf(ctx, auth) };
}

/**
 * `POST /mcp`: mcp-fleet as an MCP server (Streamable HTTP). Stateless: every request gets
 * its own server and transport, built for its caller, so any API instance answers any request
 * and nothing outlives it. GET (a standalone SSE stream) and DELETE (ending a session) have
 * nothing to do without sessions: the 405 of unrouted methods answers them.
 */
export function mcpRoutes(deps: AppDeps): Router<AppState, AppContextExtras> {
  const router = new Router<AppState, AppContextExtras>();
  // Who calls is checked while the rate limit counts the request (each a query): a refusal of
  // the limit still wins, and a check it makes moot is dropped.
  const callers = new WeakMap<object, Promise<McpCaller | { run: RunPrincipal }>>();
  const startCallerCheck: Parameters<typeof router.post>[2] = async (ctx, next) => {
    const caller = mcpCaller(ctx, deps);
    caller.catch(() => undefined);
    callers.set(ctx, caller);
    await next();
  };
  router.post('/mcp', startCallerCheck, rateLimit(deps, 'mcp'), async (ctx) => {
    const caller = await callers.get(ctx)!;
    const server = new McpServer(SERVER_INFO, { capabilities: { tools: {} } });
    if ('run' in caller) registerRunTools(server, deps, caller.run);
    else registerKeyTools(server, deps, caller);
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    // The transport writes the response itself (JSON or an SSE stream of progress then the result).
    ctx.respond = false;
    ctx.res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(ctx.req, ctx.res, (ctx.request as { body?: unknown }).body);
  });
  return router;
}
