import { ForbiddenError, subject } from '@casl/ability';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Agent, AgentRole, AgentStatus, Execution, ExecutionStatus, McpServer, Organization, User } from '../../../entities';
import { startAgentProvision } from '../../../domain/temporal';
import type { ProvisionResult } from '../../../workflows/agent-provision.workflow';
import type { ApiRouter } from '../../api-router';
import { auditByCaller } from '../../actor';
import type { AuthContext } from '../../auth/authenticate';
import type { AppDeps } from '../../deps';
import { containing, scopedPage } from '../../list';
import { AppError } from '../../../domain/errors';
import { waitAtMost } from '../../wait';
import { presentAgent, presentAgentSummary } from '../../presenters';
import { IdParams } from '../common.schemas';
import { readProgress } from '../../../domain/runs/progress';
import { AgentDetailOut, AgentOut, AgentPage, AgentStatusOut, CreateAgentBody, HierarchyOut, ListAgentsQuery, UpdateAgentBody, type HierarchyNode } from './agents.schemas';
import { rateLimit } from '../../rate-limit';

const WAIT_MS = 60_000;

export async function loadAgent(em: EntityManager, auth: AuthContext, id: string): Promise<Agent> {
  const agent = await em.findOne(Agent, { id, organization: auth.organizationId });
  if (!agent) throw AppError.notFound('Agent');
  return agent;
}

function fieldError(path: string, message: string, code = 'invalid'): AppError {
  return new AppError(400, 'validation_failed', 'Request validation failed', [{ path, message, code }]);
}

/** A supervisor must be an agent of the same organisation and server, and never a descendant. */
async function checkSupervisor(em: EntityManager, auth: AuthContext, agentId: string | undefined, serverId: string, supervisorId: string): Promise<Agent> {
  const supervisor = await em.findOne(Agent, { id: supervisorId, organization: auth.organizationId });
  if (!supervisor) throw fieldError('body.supervisorId', 'no such agent in your organisation', 'not_found');
  if (supervisor.server.id !== serverId) throw fieldError('body.supervisorId', 'the supervisor must be on the same server', 'other_server');
  if (agentId) {
    // Walk up from the new supervisor; meeting the agent itself would close a loop.
    const rows = await em.getConnection().execute<{ id: string }[]>(
      `with recursive chain(id, supervisor_id, depth) as (
         select id, supervisor_id, 0 from agents where id = ?
         union all select a.id, a.supervisor_id, c.depth + 1 from agents a join chain c on a.id = c.supervisor_id where c.depth < 1000
       ) select id from chain where id = ?`,
      [supervisorId, agentId],
    );
    if (rows.length > 0) throw new AppError(409, 'supervisor_cycle', 'That supervisor is the agent itself or one of its subordinates');
  }
  return supervisor;
}

export function agentRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['agents'];
  const em = () => deps.orm.em as EntityManager;

  api.route(
    { method: 'get', path: '/agents', summary: "List the organisation's agents", tags, auth: true, request: { query: ListAgentsQuery }, responses: { 200: { description: 'A page of agents', schema: AgentPage } } },
    async (ctx, { query }) => {
      const auth = ctx.state.auth!;
      const filters: Record<string, unknown>[] = [];
      if (query.serverId) filters.push({ server: query.serverId });
      if (query.status) filters.push({ status: query.status });
      if (query.role) filters.push({ role: query.role });
      if (query.capability) filters.push({ capabilities: { $contains: [query.capability] } });
      if (query.supervisorId) filters.push({ supervisor: query.supervisorId });
      if (query.q) filters.push({ $or: [{ name: { $ilike: containing(query.q) } }, { displayName: { $ilike: containing(query.q) } }] });
      ctx.body = await scopedPage(em(), Agent, auth, 'Agent', query, filters, presentAgent);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/agents',
      summary: 'Define an agent on a server (ADMIN, MANAGER); it starts PENDING_VALIDATION',
      tags,
      auth: true,
      request: { body: CreateAgentBody },
      before: [rateLimit(deps, 'create-agent')],
      responses: { 201: { description: 'Created', schema: AgentOut }, 409: { description: 'name_taken, master_exists' } },
    },
    async (ctx, { body }) => {
      const auth = ctx.state.auth!;
      const server = await em().findOne(McpServer, { id: body.serverId, organization: auth.organizationId });
      if (!server) throw AppError.notFound('Server');
      const draft = { organization: em().getReference(Organization, auth.organizationId), server };
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('Agent', draft as unknown as Agent));
      if (body.role === 'MASTER' && body.supervisorId) throw fieldError('body.supervisorId', 'a MASTER agent has no supervisor');
      if (body.role === 'MASTER' && (await em().count(Agent, { server, role: AgentRole.MASTER }))) {
        throw AppError.conflict('master_exists', 'This server already has a MASTER agent');
      }
      const supervisor = body.supervisorId ? await checkSupervisor(em(), auth, undefined, server.id, body.supervisorId) : undefined;
      if (await em().count(Agent, { server, name: body.name })) throw AppError.conflict('name_taken', 'This server already has an agent with that name');
      const agent = em().create(Agent, {
        ...draft,
        name: body.name,
        displayName: body.displayName ?? body.name,
        description: body.description,
        role: body.role as AgentRole,
        supervisor,
        capabilities: body.capabilities,
        maxConcurrency: body.maxConcurrency,
        createdBy: em().getReference(User, auth.userId),
      });
      auditByCaller(ctx, em(), { action: 'agent.create', resourceType: 'agent', resourceId: agent.id, changes: { name: agent.name, role: agent.role, serverId: server.id, supervisorId: supervisor?.id ?? null } });
      try {
        await em().flush();
      } catch (error) {
        if (error instanceof UniqueConstraintViolationException) throw AppError.conflict('name_taken', 'This server already has an agent with that name');
        throw error;
      }
      ctx.status = 201;
      ctx.body = presentAgent(agent);
    },
  );

  api.route(
    { method: 'get', path: '/agents/:id', summary: 'One agent, with its supervisor and direct subordinates', tags, auth: true, request: { params: IdParams }, responses: { 200: { description: 'The agent', schema: AgentDetailOut } } },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const agent = await loadAgent(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', agent);
      const [supervisor, subordinates] = await Promise.all([
        agent.supervisor ? em().fork().findOne(Agent, agent.supervisor.id) : null,
        em().fork().find(Agent, { supervisor: agent.id, organization: auth.organizationId }, { orderBy: { name: 'asc' } }),
      ]);
      ctx.body = { ...presentAgent(agent), supervisor: supervisor ? presentAgentSummary(supervisor) : null, subordinates: subordinates.map(presentAgentSummary) };
    },
  );

  api.route(
    { method: 'get', path: '/agents/:id/hierarchy', summary: 'The subtree under an agent', tags, auth: true, request: { params: IdParams }, responses: { 200: { description: 'Nested tree', schema: HierarchyOut } } },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const root = await loadAgent(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', root);
      const rows = await em().getConnection().execute<{ id: string; supervisor_id: string | null; name: string; display_name: string; role: string; status: string }[]>(
        `with recursive tree as (
           select id, supervisor_id, name, display_name, role, status, 0 as depth from agents where id = ? and organization_id = ?
           union all select a.id, a.supervisor_id, a.name, a.display_name, a.role, a.status, t.depth + 1
           from agents a join tree t on a.supervisor_id = t.id where t.depth < 100 and a.organization_id = ?
         ) select * from tree order by depth, name`,
        [root.id, auth.organizationId, auth.organizationId],
      );
      const nodes = new Map<string, HierarchyNode>();
      for (const r of rows) nodes.set(r.id, { id: r.id, name: r.name, displayName: r.display_name, role: r.role as HierarchyNode['role'], status: r.status as HierarchyNode['status'], children: [] });
      for (const r of rows) if (r.id !== root.id && r.supervisor_id) nodes.get(r.supervisor_id)?.children.push(nodes.get(r.id)!);
      ctx.body = nodes.get(root.id);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/agents/:id',
      summary: 'Change an agent (ADMIN, MANAGER); never its status or server; no supervisor cycles',
      tags,
      auth: true,
      request: { params: IdParams, body: UpdateAgentBody },
      responses: { 200: { description: 'Updated', schema: AgentOut }, 409: { description: 'supervisor_cycle, master_exists' } },
    },
    async (ctx, { params, body }) => {
      const auth = ctx.state.auth!;
      const agent = await loadAgent(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('update', agent);
      const changes: Record<string, unknown> = {};
      const note = (key: string, from: unknown, to: unknown) => {
        if (JSON.stringify(from) !== JSON.stringify(to)) changes[key] = { from, to };
      };
      if (body.displayName !== undefined) note('displayName', agent.displayName, (agent.displayName = body.displayName));
      if (body.description !== undefined) note('description', agent.description ?? null, (agent.description = body.description ?? undefined) ?? null);
      if (body.capabilities !== undefined) note('capabilities', agent.capabilities, (agent.capabilities = body.capabilities));
      if (body.maxConcurrency !== undefined) note('maxConcurrency', agent.maxConcurrency, (agent.maxConcurrency = body.maxConcurrency));
      const role = (body.role ?? agent.role) as AgentRole;
      if (role === AgentRole.MASTER && agent.role !== AgentRole.MASTER && (await em().count(Agent, { server: agent.server, role: AgentRole.MASTER, id: { $ne: agent.id } }))) {
        throw AppError.conflict('master_exists', 'This server already has a MASTER agent');
      }
      note('role', agent.role, (agent.role = role));
      if (body.supervisorId !== undefined) {
        const supervisor = body.supervisorId ? await checkSupervisor(em(), auth, agent.id, agent.server.id, body.supervisorId) : undefined;
        note('supervisorId', agent.supervisor?.id ?? null, supervisor?.id ?? null);
        agent.supervisor = supervisor;
      }
      if (agent.role === AgentRole.MASTER && agent.supervisor) throw fieldError('body.supervisorId', 'a MASTER agent has no supervisor');
      ForbiddenError.from(auth.ability).throwUnlessCan('update', agent);
      if (Object.keys(changes).length) auditByCaller(ctx, em(), { action: 'agent.update', resourceType: 'agent', resourceId: agent.id, changes });
      await em().flush();
      ctx.body = presentAgent(agent);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/agents/:id',
      summary: 'Remove an agent (ADMIN, MANAGER); 409 while it has queued or running executions; its subordinates move up to its supervisor',
      tags,
      auth: true,
      request: { params: IdParams },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'agent_busy' } },
    },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      await em().transactional(async (tx) => {
        const agent = await loadAgent(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', agent);
        const active = await tx.count(Execution, { agent, status: { $in: [ExecutionStatus.QUEUED, ExecutionStatus.RUNNING] } });
        if (active > 0) throw AppError.conflict('agent_busy', `The agent has ${active} queued or running execution(s); cancel them first`, { executions: active });
        const moved = await tx.nativeUpdate(Agent, { supervisor: agent.id }, { supervisor: agent.supervisor?.id ?? null });
        auditByCaller(ctx, tx, { action: 'agent.delete', resourceType: 'agent', resourceId: agent.id, changes: { name: agent.name, subordinatesMovedTo: agent.supervisor?.id ?? null, subordinates: moved } });
        tx.remove(agent);
      });
      ctx.status = 204;
    },
  );

  api.route(
    {
      method: 'post',
      path: '/agents/:id/validate',
      summary: "Validate an agent (ADMIN, MANAGER): the server's provision_agent then activate_agent, through a workflow; the agent becomes ACTIVE only if both succeed",
      tags,
      auth: true,
      request: { params: IdParams },
      responses: { 200: { description: 'Now ACTIVE', schema: AgentOut }, 409: { description: 'not_pending' }, 502: { description: 'provision_failed: the server refused; the agent stays PENDING_VALIDATION with its error' } },
    },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const agent = await loadAgent(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('validate', agent);
      if (agent.status !== AgentStatus.PENDING_VALIDATION && agent.status !== AgentStatus.INACTIVE) {
        throw AppError.conflict('not_pending', `The agent is ${agent.status}; only PENDING_VALIDATION or INACTIVE agents are validated`);
      }
      auditByCaller(ctx, em(), { action: 'agent.validate', resourceType: 'agent', resourceId: agent.id });
      await em().flush();
      let result: ProvisionResult;
      try {
        const handle = await startAgentProvision(deps.temporal, { agentId: agent.id, organizationId: auth.organizationId, serverId: agent.server.id, validatedBy: auth.userId });
        result = await waitAtMost(handle.result(), WAIT_MS, () => new AppError(504, 'provision_timeout', `No worker finished the validation within ${WAIT_MS / 1000} s`, { workflowId: handle.workflowId }));
      } catch (error) {
        if (error instanceof WorkflowExecutionAlreadyStartedError) throw AppError.conflict('validation_running', 'A validation of this agent is already running');
        throw error;
      }
      const fresh = await em().fork().findOneOrFail(Agent, agent.id);
      if (!result.ok) throw new AppError(502, 'provision_failed', result.error ?? 'the server refused to provision the agent', { agent: presentAgent(fresh) });
      ctx.body = presentAgent(fresh);
    },
  );

  api.route(
    { method: 'get', path: '/agents/:id/status', summary: 'Live status: agent and server status, running and queued executions with their progress', tags, auth: true, request: { params: IdParams }, responses: { 200: { description: 'Status', schema: AgentStatusOut } } },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const agent = await loadAgent(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', agent);
      const [server, running, queued] = await Promise.all([
        em().fork().findOneOrFail(McpServer, agent.server.id),
        em().fork().find(Execution, { agent, status: ExecutionStatus.RUNNING }, { orderBy: { createdAt: 'asc' }, limit: 20 }),
        em().fork().count(Execution, { agent, status: ExecutionStatus.QUEUED }),
      ]);
      const current = await Promise.all(running.map(async (e) => ({ executionId: e.id, ...(await readProgress(deps, e)) })));
      ctx.body = { agentId: agent.id, status: agent.status, lastError: agent.lastError ?? null, serverStatus: server.status, running: running.length, queued, current };
    },
  );
}
