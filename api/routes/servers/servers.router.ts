import { ForbiddenError, subject } from '@casl/ability';
import { WorkflowFailedError } from '@temporalio/client';
import { McpServer, McpTransport, Organization } from '../../../entities';
import { AppError } from '../../../domain/errors';
import { createServer, deleteServer, updateServer } from '../../../domain/servers/server-commands';
import { startServerCheck } from '../../../domain/temporal';
import type { ServerCheckResult } from '../../../workflows/contracts/server-check';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { serverPage } from './servers.list';
import { loadServer } from '../../loaders';
import { waitAtMost } from '../../wait';
import { IdParams } from '../common.schemas';
import { presentServer } from './servers.presenters';
import {
  CheckResultOut,
  CreateServerBody,
  DeleteServerQuery,
  ListServersQuery,
  ServerOut,
  ServerPage,
  UpdateServerBody,
} from './servers.schemas';
import { rateLimit } from '../../rate-limit';

/** How long the API waits for a test/health workflow before answering 504 (the run goes on). */
const CHECK_WAIT_MS = 60_000;

export function serverRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['servers'];

  /** A person waits for the check: at most CHECK_WAIT_MS, then 504 while the run goes on. */
  async function runCheck(server: McpServer, reason: 'test' | 'health'): Promise<ServerCheckResult> {
    const handle = await startServerCheck(deps.temporal, { serverId: server.id, reason, organizationId: server.organization.id });
    try {
      return await waitAtMost(
        handle.result(),
        CHECK_WAIT_MS,
        () =>
          new AppError(504, 'check_timeout', `No worker finished the check within ${CHECK_WAIT_MS / 1000} s; is the worker running?`, {
            workflowId: handle.workflowId,
          }),
      );
    } catch (error) {
      if (error instanceof WorkflowFailedError) {
        throw new AppError(502, 'check_failed', `The check could not run: ${error.cause?.message ?? error.message}`, {
          workflowId: handle.workflowId,
        });
      }
      throw error;
    }
  }

  api.route(
    {
      method: 'get',
      path: '/servers',
      summary: "List the organisation's MCP servers",
      tags,
      request: { query: ListServersQuery },
      responses: { 200: { description: 'A page of servers', schema: ServerPage } },
    },
    async (ctx, { query, em, auth }) => {
      ctx.body = await serverPage(em, auth, query);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/servers/:id',
      summary: 'One MCP server',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The server', schema: ServerOut } },
    },
    async (ctx, { params, em, auth }) => {
      const server = await loadServer(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', server);
      ctx.body = presentServer(server);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/servers',
      summary: 'Register an MCP server (ADMIN, MANAGER); the master token is encrypted at rest and never returned',
      tags,
      request: { body: CreateServerBody },
      responses: {
        201: { description: 'Registered (status UNKNOWN until tested)', schema: ServerOut },
        409: { description: 'name_taken' },
      },
    },
    async (ctx, { body, em, auth, actor }) => {
      const organization = em.getReference(Organization, auth.organizationId);
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('McpServer', { organization } as unknown as McpServer));
      const server = await createServer(em, deps.config, actor, { ...body, transport: body.transport as McpTransport });
      ctx.status = 201;
      ctx.body = presentServer(server);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/servers/:id',
      summary:
        'Change a server (ADMIN, MANAGER); a url on another origin needs masterToken in the same body; a new url, transport or master token resets its status and its pooled connection',
      tags,
      request: { params: IdParams, body: UpdateServerBody },
      responses: {
        200: { description: 'Updated', schema: ServerOut },
        400: {
          description: 'validation_failed, or master_token_required: a url on another origin (scheme, host or port) without masterToken',
        },
        409: { description: 'name_taken' },
      },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const updated = await em.transactional(async (tx) => {
        const server = await loadServer(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', server);
        await updateServer(tx, deps.config, actor, server, { ...body, transport: body.transport as McpTransport | undefined });
        // Checked again before the commit, so nobody moves a server out of their own reach.
        ForbiddenError.from(auth.ability).throwUnlessCan('update', server);
        return server;
      });
      ctx.body = presentServer(updated);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/servers/:id',
      summary: 'Remove a server (ADMIN, MANAGER); 409 while it has agents unless ?force=true',
      tags,
      request: { params: IdParams, query: DeleteServerQuery },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'server_has_agents' } },
    },
    async (ctx, { params, query, em, auth, actor }) => {
      await em.transactional(async (tx) => {
        const server = await loadServer(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', server);
        await deleteServer(tx, actor, server, { force: query.force === 'true' });
      });
      ctx.status = 204;
    },
  );

  for (const reason of ['test', 'health'] as const) {
    api.route(
      {
        method: 'post',
        path: `/servers/:id/${reason}`,
        summary:
          reason === 'test'
            ? 'Connection test: a workflow runs initialize + ping + tools/list against the server and the API waits for it (ADMIN, MANAGER)'
            : 'Health check now (the same check the server-health schedule runs every few minutes) (ADMIN, MANAGER)',
        tags,
        request: { params: IdParams },
        before: [rateLimit(deps, 'server-test')],
        responses: {
          200: { description: 'The check result, also stored on the server', schema: CheckResultOut },
          504: { description: 'check_timeout: no worker answered' },
        },
        temporalUnavailable: 'no check was started, and the server is unchanged',
      },
      async (ctx, { params, em, auth }) => {
        const server = await loadServer(em, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('test', server);
        ctx.body = await runCheck(server, reason);
      },
    );
  }
}
