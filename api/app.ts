import { RequestContext } from '@mikro-orm/core';
import Koa from 'koa';
import { ApiRouter } from './api-router';
import type { AppContext } from './context';
import type { AppDeps } from './deps';
import { errorHandler } from './middleware/error-handler';
import { jsonBody } from './middleware/json-body';
import { requestLogger } from './middleware/request-logger';
import { traceRequests } from './middleware/trace-span';
import { unrouted } from './middleware/unrouted';
import { createRegistry, generateDocument } from './openapi';
import { docsRoutes } from './routes/docs/docs.router';
import { auditRoutes } from './routes/audit/audit.router';
import { authRoutes } from './routes/auth/auth.router';
import { healthRoutes } from './routes/health/health.router';
import { agentRoutes } from './routes/agents/agents.router';
import { executionRoutes } from './routes/executions/executions.router';
import { masterRoutes } from './routes/master/master.router';
import { serverRoutes } from './routes/servers/servers.router';
import { toolPermissionRoutes } from './routes/tools/permissions.router';
import { toolRoutes } from './routes/tools/tools.router';
import { serverToolRoutes } from './routes/tools/server-tools.router';
import { taskRoutes } from './routes/tasks/tasks.router';
import { userRoutes } from './routes/users/users.router';
import { webhookRoutes } from './routes/webhooks/webhooks.router';
import { apiKeyRoutes } from './routes/api-keys/api-keys.router';
import { authenticate } from './auth/authenticate';
import { mcpRoutes } from './mcp/mcp.router';

const VERSION = '0.1.0';

/**
 * Builds the Koa application (no `listen`): request id + logger → error handler → body
 * parser → MikroORM request context → auth (user + ability) → routes → 404/405. The logger is
 * outside the error handler so that its line carries the status the client was sent.
 */
export function createApp(deps: AppDeps): Koa<AppContext['state'], AppContext> {
  const app = new Koa<AppContext['state'], AppContext>({ proxy: deps.config.http.trustProxy });
  // Errors are answered and logged by errorHandler; Koa's own handler would print stacks.
  app.silent = true;
  // Behind one reverse proxy, the client is the address that proxy appended (the last one);
  // anything before it in X-Forwarded-For was written by the client.
  app.maxIpsCount = 1;

  const api = new ApiRouter(createRegistry(), deps.orm);
  healthRoutes(api, deps);
  authRoutes(api, deps);
  userRoutes(api, deps);
  auditRoutes(api);
  serverRoutes(api, deps);
  agentRoutes(api, deps);
  executionRoutes(api, deps);
  masterRoutes(api, deps);
  toolRoutes(api);
  toolPermissionRoutes(api);
  serverToolRoutes(api, deps);
  taskRoutes(api, deps);
  webhookRoutes(api, deps);
  apiKeyRoutes(api, deps);

  let openApiDocument: unknown;
  api.router.get('/openapi.json', (ctx) => {
    openApiDocument ??= generateDocument(api.registry, VERSION);
    ctx.body = openApiDocument;
  });

  const docs = docsRoutes();
  const mcp = mcpRoutes(deps);

  app.use(traceRequests());
  app.use(deps.metrics.requestTimer());
  app.use(requestLogger(deps.logger));
  app.use(errorHandler());
  app.use(jsonBody(deps.config.http.bodyLimit));
  app.use((_ctx, next) => RequestContext.create(deps.orm.em, next));
  for (const step of authenticate(deps)) app.use(step);
  app.use(unrouted([api.router, docs, mcp]));
  app.use(api.router.routes());
  app.use(docs.routes());
  app.use(mcp.routes());
  return app;
}
