import { ForbiddenError, subject } from '@casl/ability';
import type { EntityManager } from '@mikro-orm/postgresql';
import { McpServer, ServerTool, ServerToolStatus, ToolDefinition } from '../../../entities';
import { inCatalogOf } from '../../../domain/tools/catalog-commands';
import { cancelToolChange, findCatalogTool, requestToolChange, toolChangeRunning } from '../../../domain/tools/install-commands';
import type { ToolAction } from '../../../workflows/contracts/tool-install';
import type { ApiRouter } from '../../api-router';
import type { Actor } from '../../../domain/actor';
import type { AuthContext } from '../../auth/authenticate';
import type { AppDeps } from '../../deps';
import { afterCursor, PAGE_ORDER, toPage } from '../../pagination';
import { rateLimit } from '../../rate-limit';
import { ServerToolFollower } from '../../realtime/server-tool-stream';
import { wantsEventStream } from '../../realtime/sse';
import type { HandlerContext } from '../../context';
import { loadServer } from '../../loaders';
import { presentToolSummary } from './tools.presenters';
import {
  InstallBody,
  ListServerToolsQuery,
  ServerParams,
  ServerToolOut,
  ServerToolPage,
  ServerToolParams,
  ToolChangeStartedOut,
} from './server-tools.schemas';

/** The names of the server's own tools/list listed with the first page, at most. */
const MAX_SERVER_TOOL_NAMES = 1000;

/** A ServerTool as CASL sees one of this server's, row or not. */
function serverToolSubject(server: McpServer) {
  return subject('ServerTool', { organization: server.organization } as unknown as ServerTool);
}

function presentServerTool(tool: ToolDefinition, row: ServerTool | undefined) {
  return {
    tool: presentToolSummary(tool),
    status: row?.status ?? ServerToolStatus.NOT_INSTALLED,
    installedVersion: row?.installedVersion ?? null,
    installedAt: row?.installedAt?.toISOString() ?? null,
    checkedAt: row?.checkedAt?.toISOString() ?? null,
    lastError: row?.lastError ?? null,
    logTail: row?.logTail ?? null,
    workflowId: row?.workflowId ?? null,
  };
}

/** Which catalog entries a `status` filter keeps, from the server's rows (a missing row is NOT_INSTALLED). */
function statusFilter(rows: ServerTool[], status: ServerToolStatus | undefined): Record<string, unknown>[] {
  if (!status) return [];
  if (status === ServerToolStatus.NOT_INSTALLED) return [{ id: { $nin: rows.filter((r) => r.status !== status).map((r) => r.tool.id) } }];
  return [{ id: { $in: rows.filter((r) => r.status === status).map((r) => r.tool.id) } }];
}

export function serverToolRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['tools'];

  /**
   * The server and the catalog entry a route names, read at once; a foreign or missing server
   * is a 404 before the role is checked, and a tool the organisation cannot see a 404 after.
   */
  async function loadTarget(
    em: EntityManager,
    auth: AuthContext,
    serverId: string,
    tool: { toolId?: string; name?: string },
    action: 'read' | 'install',
  ) {
    const [server, found] = await Promise.allSettled([loadServer(em, auth, serverId), findCatalogTool(em, auth.organizationId, tool)]);
    if (server.status === 'rejected') throw server.reason;
    ForbiddenError.from(auth.ability).throwUnlessCan(action, serverToolSubject(server.value));
    if (found.status === 'rejected') throw found.reason;
    return { server: server.value, tool: found.value };
  }

  /** 202 with what was started, or with Accept: text/event-stream the tool's states until the change settles. */
  async function startChange(
    ctx: HandlerContext,
    caller: { auth: AuthContext; actor: Actor },
    server: McpServer,
    tool: ToolDefinition,
    action: ToolAction,
    version?: string,
  ): Promise<void> {
    // Listening before the start: the workflow's first event may come before the answer does.
    const follower = wantsEventStream(ctx) ? new ServerToolFollower(deps, server.id, tool) : undefined;
    let started: { workflowId: string };
    try {
      started = await requestToolChange(deps, caller.actor, { server, tool, action, version });
    } catch (error) {
      follower?.stop();
      throw error;
    }
    const body = { workflowId: started.workflowId, serverId: server.id, toolId: tool.id, action };
    if (follower) return follower.stream(ctx, caller.auth, { started: body, running: () => toolChangeRunning(deps, server.id, tool.id) });
    ctx.status = 202;
    ctx.set('Location', `/api/tools/server/${server.id}/${tool.id}`);
    ctx.body = body;
  }

  api.route(
    {
      method: 'get',
      path: '/tools/server/:serverId',
      summary:
        "Every catalog tool (built-in and the organisation's own) with its state on the server, and the names the server's own tools/list offers",
      tags,
      request: { params: ServerParams, query: ListServerToolsQuery },
      responses: { 200: { description: 'A page of catalog tools with their state', schema: ServerToolPage } },
    },
    async (ctx, { params, query, em, auth }) => {
      const server = await loadServer(em, auth, params.serverId);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', server);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', serverToolSubject(server));
      const rows = await em.find(ServerTool, { server: server.id });
      const byTool = new Map(rows.map((row) => [row.tool.id, row]));
      const filters = [
        inCatalogOf(auth.organizationId),
        afterCursor(query.cursor),
        ...statusFilter(rows, query.status as ServerToolStatus | undefined),
      ];
      if (query.category) filters.push({ category: query.category });
      const tools = await em.find(ToolDefinition, { $and: filters } as never, { orderBy: PAGE_ORDER, limit: query.limit + 1 });
      const page = toPage(tools, query.limit, (tool) => presentServerTool(tool, byTool.get(tool.id)));
      const names = (server.toolsSnapshot ?? []).map((t) => t.name);
      ctx.body = {
        server: { id: server.id, name: server.name, status: server.status },
        ...page,
        serverTools: query.cursor
          ? null
          : { names: names.slice(0, MAX_SERVER_TOOL_NAMES), total: names.length, checkedAt: server.lastCheckAt?.toISOString() ?? null },
      };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/tools/server/:serverId/:toolId',
      summary:
        'One catalog tool with its state on the server; with Accept: text/event-stream its states (SSE) until a running install or uninstall settles',
      tags,
      request: { params: ServerToolParams },
      responses: {
        200: { description: 'The tool and its state (application/json), or an SSE stream (text/event-stream)', schema: ServerToolOut },
      },
    },
    async (ctx, { params, em, auth }) => {
      const { server, tool } = await loadTarget(em, auth, params.serverId, { toolId: params.toolId }, 'read');
      if (wantsEventStream(ctx)) {
        const follower = new ServerToolFollower(deps, server.id, tool);
        const running = await toolChangeRunning(deps, server.id, tool.id).catch((error: unknown) => {
          follower.stop();
          throw error;
        });
        return follower.stream(ctx, auth, running ? { running: () => toolChangeRunning(deps, server.id, tool.id) } : {});
      }
      const row = await em.findOne(ServerTool, { server: server.id, tool: tool.id });
      ctx.body = presentServerTool(tool, row ?? undefined);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tools/server/:serverId/install',
      summary:
        'Install a catalog tool on the server (ADMIN, MANAGER): a toolInstall workflow runs the entry’s install command on the host and verifies the version. 202 {workflowId}, or with Accept: text/event-stream its states until INSTALLED or FAILED',
      tags,
      request: { params: ServerParams, body: InstallBody },
      before: [rateLimit(deps, 'tool-install')],
      responses: {
        202: { description: 'Started; the tool becomes INSTALLING, then INSTALLED or FAILED', schema: ToolChangeStartedOut },
        409: { description: 'install_running: an install or uninstall of this tool is running on this server' },
      },
      temporalUnavailable: 'nothing changed on the server (`details.workflowId`)',
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const { server, tool } = await loadTarget(em, auth, params.serverId, { toolId: body.toolId, name: body.name }, 'install');
      await startChange(ctx, { auth, actor }, server, tool, 'install', body.version);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/tools/server/:serverId/:toolId',
      summary:
        'Uninstall a catalog tool from the server (ADMIN, MANAGER): 202 {workflowId}, or with Accept: text/event-stream its states until NOT_INSTALLED or FAILED',
      tags,
      request: { params: ServerToolParams },
      before: [rateLimit(deps, 'tool-install')],
      responses: {
        202: {
          description: 'Started; the tool becomes REMOVING, then NOT_INSTALLED (verified absent) or FAILED',
          schema: ToolChangeStartedOut,
        },
        409: { description: 'install_running (a change of this tool is running), not_installed (nothing to remove)' },
      },
      temporalUnavailable: 'nothing changed on the server (`details.workflowId`)',
    },
    async (ctx, { params, em, auth, actor }) => {
      const { server, tool } = await loadTarget(em, auth, params.serverId, { toolId: params.toolId }, 'install');
      await startChange(ctx, { auth, actor }, server, tool, 'uninstall');
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tools/server/:serverId/:toolId/cancel',
      summary:
        'Cancel a running install or uninstall (ADMIN, MANAGER): Temporal cancellation, which reaches the host as notifications/cancelled; the tool ends FAILED "cancelled by request"',
      tags,
      request: { params: ServerToolParams },
      responses: {
        202: { description: 'Cancellation requested', schema: ToolChangeStartedOut },
        409: { description: 'not_running: no install or uninstall of this tool is running' },
      },
      temporalUnavailable: 'the cancel may not have reached the change; try again',
    },
    async (ctx, { params, em, auth, actor }) => {
      const { server, tool } = await loadTarget(em, auth, params.serverId, { toolId: params.toolId }, 'install');
      const { workflowId } = await cancelToolChange(deps, actor, server, tool);
      ctx.status = 202;
      ctx.body = { workflowId, serverId: server.id, toolId: tool.id, action: 'cancel' };
    },
  );
}
