import { ForbiddenError, subject } from '@casl/ability';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { WorkflowFailedError } from '@temporalio/client';
import { Agent, AgentStatus, McpServer, McpTransport, Organization, ServerStatus, User } from '../../../entities';
import { lastFour, sealSecret } from '../../../lib/crypto';
import { publishEvent } from '../../../domain/events';
import { masterTokenContext } from '../../../domain/servers/master-token';
import { urlPolicy } from '../../../lib/url-policy';
import { checkUrlSyntax, UnsafeUrlError } from '../../../lib/ssrf';
import { startServerCheck } from '../../../domain/temporal';
import type { ServerCheckResult } from '../../../workflows/server-check.workflow';
import type { ApiRouter } from '../../api-router';
import { auditByCaller } from '../../actor';
import type { AuthContext } from '../../auth/authenticate';
import type { AppContext } from '../../context';
import type { AppDeps } from '../../deps';
import { containing, scopedPage } from '../../list';
import { AppError } from '../../../domain/errors';
import { waitAtMost } from '../../wait';
import { presentServer } from '../../presenters';
import { IdParams } from '../common.schemas';
import { CheckResultOut, CreateServerBody, DeleteServerQuery, ListServersQuery, ServerOut, ServerPage, UpdateServerBody } from './servers.schemas';
import { rateLimit } from '../../rate-limit';

/** How long the API waits for a test/health workflow before answering 504 (the run goes on). */
const CHECK_WAIT_MS = 60_000;

async function loadServer(em: EntityManager, auth: AuthContext, id: string): Promise<McpServer> {
  const server = await em.findOne(McpServer, { id, organization: auth.organizationId });
  if (!server) throw AppError.notFound('Server');
  return server;
}

function nameTaken(): AppError {
  return AppError.conflict('name_taken', 'This organisation already has a server with that name');
}

export function serverRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['servers'];
  const em = () => deps.orm.em as EntityManager;
  const policy = urlPolicy(deps.config);

  function safeUrl(raw: string): string {
    try {
      return checkUrlSyntax(raw, policy).toString();
    } catch (error) {
      if (error instanceof UnsafeUrlError) throw new AppError(400, 'validation_failed', 'Request validation failed', [{ path: 'body.url', message: error.message, code: error.reason }]);
      throw error;
    }
  }

  function sealToken(server: McpServer, token: string): void {
    const sealed = sealSecret(deps.config.encryptionKeys, token, masterTokenContext(server.id));
    server.masterTokenCiphertext = sealed.ciphertext;
    server.masterTokenKeyId = sealed.keyId;
    server.masterTokenLast4 = lastFour(token) || undefined;
  }

  async function runCheck(ctx: AppContext, server: McpServer, reason: 'test' | 'health'): Promise<ServerCheckResult> {
    const auth = ctx.state.auth!;
    const handle = await startServerCheck(deps.temporal, { serverId: server.id, reason, organizationId: auth.organizationId });
    try {
      return await waitAtMost(handle.result(), CHECK_WAIT_MS, () => new AppError(504, 'check_timeout', `No worker finished the check within ${CHECK_WAIT_MS / 1000} s; is the worker running?`, { workflowId: handle.workflowId }));
    } catch (error) {
      if (error instanceof WorkflowFailedError) {
        throw new AppError(502, 'check_failed', `The check could not run: ${error.cause?.message ?? error.message}`, { workflowId: handle.workflowId });
      }
      throw error;
    }
  }

  api.route(
    { method: 'get', path: '/servers', summary: "List the organisation's MCP servers", tags, auth: true, request: { query: ListServersQuery }, responses: { 200: { description: 'A page of servers', schema: ServerPage } } },
    async (ctx, { query }) => {
      const auth = ctx.state.auth!;
      const filters: Record<string, unknown>[] = [];
      if (query.status) filters.push({ status: query.status });
      if (query.name) filters.push({ name: { $ilike: containing(query.name) } });
      ctx.body = await scopedPage(em(), McpServer, auth, 'McpServer', query, filters, presentServer);
    },
  );

  api.route(
    { method: 'get', path: '/servers/:id', summary: 'One MCP server', tags, auth: true, request: { params: IdParams }, responses: { 200: { description: 'The server', schema: ServerOut } } },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const server = await loadServer(em(), auth, params.id);
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
      auth: true,
      request: { body: CreateServerBody },
      responses: { 201: { description: 'Registered (status UNKNOWN until tested)', schema: ServerOut }, 409: { description: 'name_taken' } },
    },
    async (ctx, { body }) => {
      const auth = ctx.state.auth!;
      const organization = em().getReference(Organization, auth.organizationId);
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('McpServer', { organization } as unknown as McpServer));
      const url = safeUrl(body.url);
      if (await em().count(McpServer, { organization, name: body.name })) throw nameTaken();
      const server = em().create(McpServer, {
        organization,
        name: body.name,
        url,
        transport: body.transport as McpTransport,
        description: body.description,
        masterTokenCiphertext: '',
        masterTokenKeyId: '',
        createdBy: em().getReference(User, auth.userId),
      });
      sealToken(server, body.masterToken);
      auditByCaller(ctx, em(), { action: 'server.create', resourceType: 'server', resourceId: server.id, changes: { name: server.name, url, transport: server.transport } });
      try {
        await em().flush();
      } catch (error) {
        if (error instanceof UniqueConstraintViolationException) throw nameTaken();
        throw error;
      }
      ctx.status = 201;
      ctx.body = presentServer(server);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/servers/:id',
      summary: 'Change a server (ADMIN, MANAGER); a url on another origin needs masterToken in the same body; a new url, transport or master token resets its status and its pooled connection',
      tags,
      auth: true,
      request: { params: IdParams, body: UpdateServerBody },
      responses: {
        200: { description: 'Updated', schema: ServerOut },
        400: { description: 'validation_failed, or master_token_required: a url on another origin (scheme, host or port) without masterToken' },
        409: { description: 'name_taken' },
      },
    },
    async (ctx, { params, body }) => {
      const auth = ctx.state.auth!;
      const server = await loadServer(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('update', server);
      const changes: Record<string, unknown> = {};
      const set = <K extends 'name' | 'url' | 'transport' | 'description'>(key: K, value: McpServer[K] | undefined) => {
        if (value === undefined || value === server[key]) return;
        changes[key] = { from: server[key] ?? null, to: value ?? null };
        server[key] = value;
      };
      const url = body.url !== undefined ? safeUrl(body.url) : undefined;
      // The stored token was given for the old origin; sending it to a new one would hand it to
      // whoever runs that host. A path on the same origin is the same server's operator.
      if (url !== undefined && body.masterToken === undefined && new URL(url).origin !== new URL(server.url).origin) {
        throw new AppError(400, 'master_token_required', 'A URL on another origin needs the master token again', [
          { path: 'body.masterToken', message: 'required when the URL moves to another scheme, host or port; the stored token is never sent to a new origin', code: 'required' },
        ]);
      }
      set('name', body.name);
      set('url', url);
      set('transport', body.transport as McpTransport | undefined);
      if (body.description === null && server.description !== undefined) {
        changes.description = { from: server.description, to: null };
        server.description = undefined;
      } else if (body.description) set('description', body.description);
      if (body.masterToken !== undefined) {
        sealToken(server, body.masterToken);
        // Recorded as a fact, never as a value.
        changes.masterToken = { rotated: true };
      }
      const previousStatus = server.status;
      if (changes.url || changes.transport || changes.masterToken) {
        // The next check talks to a different target: what we knew no longer holds.
        server.status = ServerStatus.UNKNOWN;
        server.lastError = undefined;
      }
      ForbiddenError.from(auth.ability).throwUnlessCan('update', server);
      if (Object.keys(changes).length) auditByCaller(ctx, em(), { action: 'server.update', resourceType: 'server', resourceId: server.id, changes });
      try {
        await em().flush();
      } catch (error) {
        if (error instanceof UniqueConstraintViolationException) throw nameTaken();
        throw error;
      }
      if (previousStatus !== server.status) {
        await publishEvent(em(), {
          type: 'server:status',
          organizationId: auth.organizationId,
          serverId: server.id,
          status: server.status,
          previousStatus,
          reason: 'connection settings changed',
          at: new Date().toISOString(),
        });
      }
      ctx.body = presentServer(server);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/servers/:id',
      summary: 'Remove a server (ADMIN, MANAGER); 409 while it has agents unless ?force=true',
      tags,
      auth: true,
      request: { params: IdParams, query: DeleteServerQuery },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'server_has_agents' } },
    },
    async (ctx, { params, query }) => {
      const auth = ctx.state.auth!;
      await em().transactional(async (tx) => {
        const server = await loadServer(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', server);
        const agents = await tx.count(Agent, { server });
        if (agents > 0 && query.force !== 'true') {
          throw AppError.conflict('server_has_agents', `The server still has ${agents} agent(s); delete them first or pass ?force=true`, { agents });
        }
        if (agents > 0) await tx.nativeUpdate(Agent, { server }, { status: AgentStatus.INACTIVE });
        auditByCaller(ctx, tx, { action: 'server.delete', resourceType: 'server', resourceId: server.id, changes: { name: server.name, url: server.url, force: query.force === 'true', agents } });
        tx.remove(server);
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
        auth: true,
        request: { params: IdParams },
        before: [rateLimit(deps, 'server-test')],
        responses: { 200: { description: 'The check result, also stored on the server', schema: CheckResultOut }, 504: { description: 'check_timeout: no worker answered' } },
      },
      async (ctx, { params }) => {
        const auth = ctx.state.auth!;
        const server = await loadServer(em(), auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('test', server);
        ctx.body = await runCheck(ctx, server, reason);
      },
    );
  }
}
