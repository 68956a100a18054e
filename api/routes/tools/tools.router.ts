import { ForbiddenError, subject } from '@casl/ability';
import { Organization, ToolDefinition } from '../../../entities';
import { createTool, deleteTool, updateTool } from '../../../domain/tools/catalog-commands';
import type { ApiRouter } from '../../api-router';
import { accessibleFilter } from '../../auth/scope';
import { containing } from '../../list';
import { loadTool } from '../../loaders';
import { afterCursor, PAGE_ORDER, toPage } from '../../pagination';
import { IdParams } from '../common.schemas';
import { presentTool } from './tools.presenters';
import { CreateToolBody, ListToolsQuery, ToolOut, ToolPage, UpdateToolBody } from './tools.schemas';

export function toolRoutes(api: ApiRouter): void {
  const tags = ['tools'];

  api.route(
    {
      method: 'get',
      path: '/tools',
      summary: "The tool catalog: the built-in entries and the organisation's own",
      tags,
      request: { query: ListToolsQuery },
      responses: { 200: { description: 'A page of catalog entries', schema: ToolPage } },
    },
    async (ctx, { query, em, auth }) => {
      // The read rule itself is "built-in or own organisation" (api/auth/abilities.ts).
      const scope = accessibleFilter(auth.ability, 'read', 'ToolDefinition');
      if (!scope) {
        ctx.body = { items: [], nextCursor: null };
        return;
      }
      const filters: Record<string, unknown>[] = [scope, afterCursor(query.cursor)];
      if (query.category) filters.push({ category: query.category });
      if (query.q) {
        const text = containing(query.q);
        filters.push({ $or: [{ name: { $ilike: text } }, { displayName: { $ilike: text } }, { description: { $ilike: text } }] });
      }
      const rows = await em.find(ToolDefinition, { $and: filters } as never, { orderBy: PAGE_ORDER, limit: query.limit + 1 });
      ctx.body = toPage(rows, query.limit, presentTool);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/tools/:id',
      summary: 'One catalog entry',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The entry', schema: ToolOut } },
    },
    async (ctx, { params, em, auth }) => {
      const tool = await loadTool(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', tool);
      ctx.body = presentTool(tool);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tools',
      summary:
        "Add an entry to the organisation's catalog (ADMIN only: its commands run on the servers as the host's user); audited with its commands",
      tags,
      request: { body: CreateToolBody },
      responses: {
        201: { description: 'Created', schema: ToolOut },
        400: { description: 'validation_failed; platform_tool on body.name: the name of a host contract tool' },
        403: { description: 'forbidden: only an ADMIN writes the catalog' },
        409: { description: 'name_taken: the organisation or the built-in catalog has a tool of that name' },
      },
    },
    async (ctx, { body, em, auth, actor }) => {
      const draft = { organization: em.getReference(Organization, auth.organizationId) };
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('ToolDefinition', draft as unknown as ToolDefinition));
      const tool = await createTool(em, actor, body);
      ctx.status = 201;
      ctx.body = presentTool(tool);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/tools/:id',
      summary:
        "Change an entry of the organisation's catalog (ADMIN only: its commands run on the servers as the host's user); built-in entries are read-only",
      tags,
      request: { params: IdParams, body: UpdateToolBody },
      responses: {
        200: { description: 'Updated', schema: ToolOut },
        400: { description: 'validation_failed; platform_tool on body.name: the name of a host contract tool' },
        403: { description: 'builtin_read_only; forbidden: only an ADMIN writes the catalog' },
        409: { description: 'name_taken' },
      },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const tool = await loadTool(em, auth, params.id);
      // A built-in entry answers builtin_read_only whatever the role: that is the reason it cannot change.
      if (tool.organization) ForbiddenError.from(auth.ability).throwUnlessCan('update', tool);
      ctx.body = presentTool(await updateTool(em, actor, tool, body));
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/tools/:id',
      summary: "Remove an entry of the organisation's catalog (ADMIN only); 409 while it is on a server or granted to an agent",
      tags,
      request: { params: IdParams },
      responses: {
        204: { description: 'Deleted' },
        403: { description: 'builtin_read_only; forbidden: only an ADMIN writes the catalog' },
        409: { description: 'tool_in_use; error.details: {servers: [{serverId, name, status}], agents: [{agentId, name}]}' },
      },
    },
    async (ctx, { params, em, auth, actor }) => {
      await em.transactional(async (tx) => {
        const tool = await loadTool(tx, auth, params.id);
        if (tool.organization) ForbiddenError.from(auth.ability).throwUnlessCan('delete', tool);
        await deleteTool(tx, actor, tool);
      });
      ctx.status = 204;
    },
  );
}
