import { ForbiddenError, subject } from '@casl/ability';
import { Agent, AgentRole, Execution, ExecutionStatus, McpServer, Organization, SLOT_HOLDING_STATUSES } from '../../../entities';
import { createAgent, deleteAgent, retireFromServer, startValidation, updateAgent } from '../../../domain/agents/agent-commands';
import { agentHierarchy, supervisionOf } from '../../../domain/agents/agent-queries';
import { AppError } from '../../../domain/errors';
import { readProgress } from '../../../domain/runs/progress';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { agentPage } from './agents.list';
import { loadAgent, loadServer } from '../../loaders';
import { waitAtMost } from '../../wait';
import { IdParams } from '../common.schemas';
import { presentAgent, presentAgentSummary } from './agents.presenters';
import {
  AgentDetailOut,
  AgentOut,
  AgentPage,
  AgentStatusOut,
  CreateAgentBody,
  HierarchyOut,
  ListAgentsQuery,
  UpdateAgentBody,
} from './agents.schemas';
import { rateLimit } from '../../rate-limit';

const WAIT_MS = 60_000;

export function agentRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['agents'];

  api.route(
    {
      method: 'get',
      path: '/agents',
      summary: "List the organisation's agents",
      tags,
      request: { query: ListAgentsQuery },
      responses: { 200: { description: 'A page of agents', schema: AgentPage } },
    },
    async (ctx, { query, em, auth }) => {
      ctx.body = await agentPage(em, auth, query);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/agents',
      summary: 'Define an agent on a server (ADMIN, MANAGER); it starts PENDING_VALIDATION',
      tags,
      request: { body: CreateAgentBody },
      before: [rateLimit(deps, 'create-agent')],
      responses: { 201: { description: 'Created', schema: AgentOut }, 409: { description: 'name_taken, master_exists' } },
    },
    async (ctx, { body, em, auth, actor }) => {
      const server = await loadServer(em, auth, body.serverId);
      const draft = { organization: em.getReference(Organization, auth.organizationId), server };
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('Agent', draft as unknown as Agent));
      const agent = await createAgent(em, actor, { ...body, server, role: body.role as AgentRole });
      ctx.status = 201;
      ctx.body = presentAgent(agent);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/agents/:id',
      summary: 'One agent, with its supervisor and direct subordinates',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The agent', schema: AgentDetailOut } },
    },
    async (ctx, { params, em, auth }) => {
      const agent = await loadAgent(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', agent);
      const { supervisor, subordinates } = await supervisionOf(em, agent);
      ctx.body = {
        ...presentAgent(agent),
        supervisor: supervisor ? presentAgentSummary(supervisor) : null,
        subordinates: subordinates.map(presentAgentSummary),
      };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/agents/:id/hierarchy',
      summary: 'The subtree under an agent',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'Nested tree', schema: HierarchyOut } },
    },
    async (ctx, { params, em, auth }) => {
      const root = await loadAgent(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', root);
      ctx.body = await agentHierarchy(em, auth.organizationId, root.id);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/agents/:id',
      summary: 'Change an agent (ADMIN, MANAGER); never its status or server; no supervisor cycles',
      tags,
      request: { params: IdParams, body: UpdateAgentBody },
      responses: { 200: { description: 'Updated', schema: AgentOut }, 409: { description: 'supervisor_cycle, master_exists' } },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const updated = await em.transactional(async (tx) => {
        const agent = await loadAgent(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', agent);
        await updateAgent(tx, actor, agent, { ...body, role: body.role as AgentRole | undefined });
        // Checked again before the commit, so nobody moves an agent out of their own reach.
        ForbiddenError.from(auth.ability).throwUnlessCan('update', agent);
        return agent;
      });
      ctx.body = presentAgent(updated);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/agents/:id',
      summary:
        'Remove an agent (ADMIN, MANAGER); 409 while it has queued or running executions; its subordinates move up to its supervisor; a provisioned agent is then retired from its server in the background',
      tags,
      request: { params: IdParams },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'agent_busy' } },
    },
    async (ctx, { params, em, auth, actor }) => {
      const retire = await em.transactional(async (tx) => {
        const agent = await loadAgent(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', agent);
        return deleteAgent(tx, actor, agent);
      });
      // After the commit, and without waiting for the server: the agentRetire workflow does that.
      if (retire) await retireFromServer(deps, retire);
      ctx.status = 204;
    },
  );

  api.route(
    {
      method: 'post',
      path: '/agents/:id/validate',
      summary:
        "Validate an agent (ADMIN, MANAGER): the server's provision_agent then activate_agent, through a workflow; the agent becomes ACTIVE only if both succeed",
      tags,
      request: { params: IdParams },
      responses: {
        200: { description: 'Now ACTIVE', schema: AgentOut },
        409: { description: 'not_pending' },
        502: { description: 'provision_failed: the server refused; the agent stays PENDING_VALIDATION with its error' },
      },
      temporalUnavailable: 'no validation was started, and the agent stays as it was',
    },
    async (ctx, { params, em, auth, actor }) => {
      const agent = await loadAgent(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('validate', agent);
      const handle = await startValidation(em, deps.temporal, actor, agent);
      const result = await waitAtMost(
        handle.result(),
        WAIT_MS,
        () =>
          new AppError(504, 'provision_timeout', `No worker finished the validation within ${WAIT_MS / 1000} s`, {
            workflowId: handle.workflowId,
          }),
      );
      const fresh = await em.fork().findOneOrFail(Agent, agent.id);
      if (!result.ok)
        throw new AppError(502, 'provision_failed', result.error ?? 'the server refused to provision the agent', {
          agent: presentAgent(fresh),
        });
      ctx.body = presentAgent(fresh);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/agents/:id/status',
      summary: 'Live status: agent and server status, running and queued executions with their progress',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'Status', schema: AgentStatusOut } },
    },
    async (ctx, { params, em, auth }) => {
      const agent = await loadAgent(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', agent);
      const [server, running, queued] = await Promise.all([
        em.fork().findOneOrFail(McpServer, agent.server.id),
        em.fork().find(Execution, { agent, status: { $in: [...SLOT_HOLDING_STATUSES] } }, { orderBy: { createdAt: 'asc' }, limit: 20 }),
        em.fork().count(Execution, { agent, status: ExecutionStatus.QUEUED }),
      ]);
      const current = await Promise.all(running.map(async (e) => ({ executionId: e.id, ...(await readProgress(deps, e)) })));
      ctx.body = {
        agentId: agent.id,
        status: agent.status,
        lastError: agent.lastError ?? null,
        serverStatus: server.status,
        running: running.length,
        queued,
        current,
      };
    },
  );
}
