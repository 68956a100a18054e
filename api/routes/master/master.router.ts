import { ForbiddenError, subject } from '@casl/ability';
import { UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, AgentStatus, Execution, ExecutionTrigger, McpServer, User } from '../../../entities';
import type { AgentExecutionResult } from '../../../workflows/agent-execution.workflow';
import type { ApiRouter } from '../../api-router';
import { actorOf, auditByCaller } from '../../actor';
import type { AuthContext } from '../../auth/authenticate';
import type { AppDeps } from '../../deps';
import { AppError } from '../../../domain/errors';
import { waitAtMost } from '../../wait';
import { presentAgent } from '../../presenters';
import { zodDetails } from '../../validate';
import { z } from '../../zod';
import { AgentOut } from '../agents/agents.schemas';
import { startExecution } from '../../../domain/runs/start-execution';
import { streamExecution } from '../../realtime/sse';
import { AGENT_SPEC_JSON_SCHEMA, AgentSpec, CreateAgentViaMasterBody, MasterExecuteBody } from './master.schemas';
import { rateLimit } from '../../rate-limit';

const SPEC_WAIT_MS = 120_000;

async function resolveServer(em: EntityManager, auth: AuthContext, serverId: string | undefined): Promise<McpServer> {
  if (serverId) {
    const server = await em.findOne(McpServer, { id: serverId, organization: auth.organizationId });
    if (!server) throw AppError.notFound('Server');
    return server;
  }
  const servers = await em.find(McpServer, { organization: auth.organizationId }, { limit: 2 });
  if (servers.length !== 1) {
    throw new AppError(400, 'validation_failed', 'Request validation failed', [{ path: 'body.serverId', message: servers.length ? 'required: your organisation has several servers' : 'your organisation has no server', code: 'required' }]);
  }
  return servers[0]!;
}

async function masterOf(em: EntityManager, server: McpServer): Promise<Agent> {
  const master = await em.findOne(Agent, { server, role: AgentRole.MASTER });
  if (!master) throw AppError.conflict('no_master', 'This server has no MASTER agent');
  if (master.status !== AgentStatus.ACTIVE && master.status !== AgentStatus.BUSY) throw AppError.conflict('agent_not_active', `The server's MASTER agent is ${master.status}`);
  return master;
}

export function masterRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['master'];
  const em = () => deps.orm.em as EntityManager;

  api.route(
    {
      method: 'post',
      path: '/master/execute',
      summary: "Run a prompt on a server's MASTER agent and stream its events (SSE); serverId may be omitted when the organisation has one server",
      tags,
      auth: true,
      request: { body: MasterExecuteBody },
      before: [rateLimit(deps, 'execute')],
      responses: { 200: { description: 'text/event-stream of the execution events', contentType: 'text/event-stream', schema: z.string() }, 409: { description: 'no_master, agent_not_active' } },
    },
    async (ctx, { body }) => {
      const auth = ctx.state.auth!;
      const server = await resolveServer(em(), auth, body.serverId);
      const master = await masterOf(em(), server);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', master);
      const execution = await startExecution(deps, actorOf(ctx), { agent: master, prompt: body.prompt, trigger: ExecutionTrigger.MASTER });
      ctx.set('X-Execution-Id', execution.id);
      await streamExecution(ctx, deps, execution.id, 0);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/master/create-agent',
      summary: 'Ask the MASTER agent for an agent specification and create that agent under it, PENDING_VALIDATION',
      tags,
      auth: true,
      request: { body: CreateAgentViaMasterBody },
      // It runs the MASTER agent too: an execution as well as a new agent.
      before: [rateLimit(deps, 'create-agent', 'execute')],
      responses: {
        201: { description: 'Created from the master agent’s specification', schema: AgentOut.extend({ executionId: z.uuid() }) },
        422: { description: 'invalid_agent_spec: the master agent answered no valid specification (details say why)' },
        502: { description: 'master_failed: the master agent’s run failed' },
      },
    },
    async (ctx, { body }) => {
      const auth = ctx.state.auth!;
      const server = await resolveServer(em(), auth, body.serverId);
      const master = await masterOf(em(), server);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', master);
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('Agent', { organization: { id: auth.organizationId } } as unknown as Agent));
      const execution = await startExecution(deps, actorOf(ctx), { agent: master, prompt: body.prompt, trigger: ExecutionTrigger.MASTER, context: { responseSchema: AGENT_SPEC_JSON_SCHEMA } });
      const handle = deps.temporal.client.workflow.getHandle(execution.workflowId!);
      const outcome = await waitAtMost(handle.result() as Promise<AgentExecutionResult>, SPEC_WAIT_MS, () => new AppError(504, 'master_timeout', `The master agent did not answer within ${SPEC_WAIT_MS / 1000} s`, { executionId: execution.id }));
      if (outcome.status !== 'COMPLETED') throw new AppError(502, 'master_failed', `The master agent's run ${outcome.status}: ${outcome.error ?? 'no details'}`, { executionId: execution.id });

      const stored = await em().fork().findOneOrFail(Execution, execution.id);
      const data = (stored.result as { data?: unknown } | undefined)?.data;
      if (data === undefined || data === null) throw new AppError(422, 'invalid_agent_spec', 'The master agent answered no agent specification', { executionId: execution.id, details: [{ path: 'data', message: 'missing', code: 'required' }] });
      const spec = AgentSpec.safeParse(data);
      if (!spec.success) throw new AppError(422, 'invalid_agent_spec', 'The master agent answered an invalid agent specification', { executionId: execution.id, details: zodDetails(spec.error, 'data') });

      const agent = em().create(Agent, {
        organization: master.organization,
        server,
        name: spec.data.name,
        displayName: spec.data.displayName ?? spec.data.name,
        description: spec.data.description,
        role: AgentRole[spec.data.role],
        supervisor: master,
        capabilities: [...new Set(spec.data.capabilities)],
        maxConcurrency: spec.data.maxConcurrency,
        createdBy: em().getReference(User, auth.userId),
      });
      auditByCaller(ctx, em(), { action: 'agent.create', resourceType: 'agent', resourceId: agent.id, changes: { name: agent.name, role: agent.role, via: 'master', executionId: execution.id, supervisorId: master.id } });
      try {
        await em().flush();
      } catch (error) {
        if (error instanceof UniqueConstraintViolationException) throw AppError.conflict('name_taken', `This server already has an agent named ${spec.data.name}`, { executionId: execution.id });
        throw error;
      }
      ctx.status = 201;
      ctx.body = { ...presentAgent(agent), executionId: execution.id };
    },
  );
}
