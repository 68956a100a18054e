import { ForbiddenError, subject } from '@casl/ability';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, Execution, ExecutionTrigger, McpServer } from '../../../entities';
import { createAgent } from '../../../domain/agents/agent-commands';
import { runnableMasterOf } from '../../../domain/agents/agent-rules';
import { AppError, fieldError } from '../../../domain/errors';
import { startExecution } from '../../../domain/runs/start-execution';
import { executionOutcome } from '../../../domain/temporal';
import type { ApiRouter } from '../../api-router';
import type { AuthContext } from '../../auth/authenticate';
import type { AppDeps } from '../../deps';
import { loadServer } from '../../loaders';
import { waitAtMost } from '../../wait';
import { zodDetails } from '../../validate';
import { z } from '../../zod';
import { presentAgent } from '../agents/agents.presenters';
import { AgentOut } from '../agents/agents.schemas';
import { streamExecution } from '../../realtime/sse';
import { AGENT_SPEC_JSON_SCHEMA, AgentSpec, CreateAgentViaMasterBody, MasterExecuteBody } from './master.schemas';
import { rateLimit } from '../../rate-limit';

const SPEC_WAIT_MS = 120_000;

/** The server named, or the organisation's only one. */
async function resolveServer(em: EntityManager, auth: AuthContext, serverId: string | undefined): Promise<McpServer> {
  if (serverId) return loadServer(em, auth, serverId);
  const servers = await em.find(McpServer, { organization: auth.organizationId }, { limit: 2 });
  if (servers.length !== 1)
    throw fieldError(
      'body.serverId',
      servers.length ? 'required: your organisation has several servers' : 'your organisation has no server',
      'required',
    );
  return servers[0]!;
}

/** The agent specification the MASTER agent's finished run answered, or a 422 saying why there is none. */
async function specifiedAgent(em: EntityManager, executionId: string): Promise<AgentSpec> {
  const stored = await em.fork().findOneOrFail(Execution, executionId);
  const data = (stored.result as { data?: unknown } | undefined)?.data;
  if (data === undefined || data === null)
    throw new AppError(422, 'invalid_agent_spec', 'The master agent answered no agent specification', {
      executionId,
      details: [{ path: 'data', message: 'missing', code: 'required' }],
    });
  const spec = AgentSpec.safeParse(data);
  if (!spec.success)
    throw new AppError(422, 'invalid_agent_spec', 'The master agent answered an invalid agent specification', {
      executionId,
      details: zodDetails(spec.error, 'data'),
    });
  return spec.data;
}

export function masterRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['master'];

  api.route(
    {
      method: 'post',
      path: '/master/execute',
      summary:
        "Run a prompt on a server's MASTER agent and stream its events (SSE); serverId may be omitted when the organisation has one server",
      tags,
      request: { body: MasterExecuteBody },
      before: [rateLimit(deps, 'execute')],
      responses: {
        200: { description: 'text/event-stream of the execution events', contentType: 'text/event-stream', schema: z.string() },
        409: { description: 'no_master, agent_not_active' },
      },
      temporalUnavailable: "the master's run was recorded, then ended FAILED (`details.executionId`)",
    },
    async (ctx, { body, em, auth, actor }) => {
      const server = await resolveServer(em, auth, body.serverId);
      const master = await runnableMasterOf(em, server.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', master);
      const execution = await startExecution(deps, actor, { agent: master, prompt: body.prompt, trigger: ExecutionTrigger.MASTER });
      deps.metrics.runStarted(execution);
      ctx.set('X-Execution-Id', execution.id);
      await streamExecution(ctx, deps, auth, execution.id, 0);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/master/create-agent',
      summary: 'Ask the MASTER agent for an agent specification and create that agent under it, PENDING_VALIDATION',
      tags,
      request: { body: CreateAgentViaMasterBody },
      // It runs the MASTER agent too: an execution as well as a new agent.
      before: [rateLimit(deps, 'create-agent', 'execute')],
      responses: {
        201: { description: 'Created from the master agent’s specification', schema: AgentOut.extend({ executionId: z.uuid() }) },
        422: { description: 'invalid_agent_spec: the master agent answered no valid specification (details say why)' },
        502: { description: 'master_failed: the master agent’s run failed' },
      },
      temporalUnavailable: "no agent was created; the master's run, if it was recorded, ended FAILED",
    },
    async (ctx, { body, em, auth, actor }) => {
      const server = await resolveServer(em, auth, body.serverId);
      const master = await runnableMasterOf(em, server.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', master);
      ForbiddenError.from(auth.ability).throwUnlessCan(
        'create',
        subject('Agent', { organization: { id: auth.organizationId } } as unknown as Agent),
      );
      const execution = await startExecution(deps, actor, {
        agent: master,
        prompt: body.prompt,
        trigger: ExecutionTrigger.MASTER,
        context: { responseSchema: AGENT_SPEC_JSON_SCHEMA },
      });
      deps.metrics.runStarted(execution);
      const outcome = await waitAtMost(
        executionOutcome(deps.temporal, execution.id),
        SPEC_WAIT_MS,
        () =>
          new AppError(504, 'master_timeout', `The master agent did not answer within ${SPEC_WAIT_MS / 1000} s`, {
            executionId: execution.id,
          }),
      );
      if (outcome.status !== 'COMPLETED')
        throw new AppError(502, 'master_failed', `The master agent's run ${outcome.status}: ${outcome.error ?? 'no details'}`, {
          executionId: execution.id,
        });

      const spec = await specifiedAgent(em, execution.id);
      const agent = await createAgent(em, actor, {
        ...spec,
        server,
        role: AgentRole[spec.role],
        supervisorId: master.id,
        fromExecutionId: execution.id,
      });
      ctx.status = 201;
      ctx.body = { ...presentAgent(agent), executionId: execution.id };
    },
  );
}
