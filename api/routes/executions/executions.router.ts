import { ForbiddenError, subject } from '@casl/ability';
import { Agent, Execution, ExecutionTrigger } from '../../../entities';
import { cancelExecution } from '../../../domain/runs/cancel';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { scopedPage } from '../../list';
import { loadAgent, loadExecution } from '../../loaders';
import { IdParams } from '../common.schemas';
import {
  EventsOut,
  EventsQuery,
  ExecuteBody,
  ExecutionDetailOut,
  ExecutionPage,
  InputAnsweredOut,
  InputBody,
  ListExecutionsQuery,
  StartedOut,
} from './executions.schemas';
import { answerInput, pendingInputOf } from '../../../domain/runs/inputs';
import { presentChild, presentExecution, presentPendingInput } from './executions.presenters';
import { eventsAfter } from '../../../domain/runs/execution-log';
import { readProgress } from '../../../domain/runs/progress';
import { startExecution } from '../../../domain/runs/start-execution';
import { streamExecution, wantsEventStream } from '../../realtime/sse';
import { rateLimit } from '../../rate-limit';

function lastEventId(header: string): number | undefined {
  const n = Number.parseInt(header, 10);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function executionRoutes(api: ApiRouter, deps: AppDeps): void {
  api.route(
    {
      method: 'post',
      path: '/agents/:id/execute',
      summary:
        'Run a prompt on an ACTIVE agent (ADMIN, MANAGER, OPERATOR): 202 {executionId, workflowId}, or with Accept: text/event-stream the execution events as SSE until it ends',
      tags: ['agents', 'executions'],
      request: { params: IdParams, body: ExecuteBody },
      before: [rateLimit(deps, 'execute')],
      responses: {
        202: { description: 'Started (QUEUED until a slot is free)', schema: StartedOut },
        409: { description: 'agent_not_active' },
      },
      temporalUnavailable:
        'the run was recorded, then ended FAILED (`details.executionId`), its slot given back; trying again starts a new run',
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const agent = await loadAgent(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', agent);
      const execution = await startExecution(deps, actor, {
        agent,
        prompt: body.prompt,
        context: body.context,
        trigger: ExecutionTrigger.API,
        inputTimeoutMs: body.inputTimeoutMs,
      });
      deps.metrics.runStarted(execution);
      if (wantsEventStream(ctx)) return streamExecution(ctx, deps, auth, execution.id, 0);
      ctx.status = 202;
      ctx.set('Location', `/api/executions/${execution.id}`);
      ctx.body = { executionId: execution.id, workflowId: execution.workflowId };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/executions',
      summary: "List the organisation's executions",
      tags: ['executions'],
      request: { query: ListExecutionsQuery },
      responses: { 200: { description: 'A page', schema: ExecutionPage } },
    },
    async (ctx, { query, em, auth }) => {
      const filters: Record<string, unknown>[] = [];
      if (query.agentId) filters.push({ agent: query.agentId });
      if (query.taskId) filters.push({ task: query.taskId });
      if (query.status) filters.push({ status: query.status });
      if (query.from) filters.push({ createdAt: { $gte: new Date(query.from) } });
      if (query.to) filters.push({ createdAt: { $lt: new Date(query.to) } });
      ctx.body = await scopedPage(em, Execution, auth, 'Execution', query, filters, (e: Execution) => presentExecution(e));
    },
  );

  api.route(
    {
      method: 'get',
      path: '/executions/:id',
      summary: 'One execution with its output, todo list and live progress',
      tags: ['executions'],
      request: { params: IdParams },
      responses: { 200: { description: 'The execution', schema: ExecutionDetailOut } },
    },
    async (ctx, { params, em, auth }) => {
      const execution = await loadExecution(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', execution);
      const [progress, pending, children] = await Promise.all([
        readProgress(deps, execution),
        pendingInputOf(em, execution),
        em.find(
          Execution,
          { parentExecution: execution.id, organization: auth.organizationId },
          { populate: ['agent'], orderBy: { createdAt: 'asc', id: 'asc' } },
        ),
      ]);
      ctx.body = {
        ...presentExecution(execution, true),
        progress,
        pendingInput: pending ? presentPendingInput(pending) : null,
        children: children.map(presentChild),
      };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/executions/:id/events',
      summary: 'The execution event log: JSON after a seq, or SSE (resumable with Last-Event-ID) until the execution ends',
      tags: ['executions'],
      request: { params: IdParams, query: EventsQuery },
      responses: {
        200: { description: 'Events (application/json) or an SSE stream (text/event-stream)', schema: EventsOut },
        204: {
          description:
            'SSE resumed (Last-Event-ID or after) at or past the final status event: nothing more will come; an EventSource stops reconnecting',
        },
      },
    },
    async (ctx, { params, query, em, auth }) => {
      const execution = await loadExecution(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', execution);
      if (wantsEventStream(ctx))
        return streamExecution(ctx, deps, auth, execution.id, lastEventId(ctx.get('last-event-id')) ?? query.after);
      const items = await eventsAfter(em, execution.id, query.after, query.limit);
      ctx.body = { items, nextAfter: items.length ? items[items.length - 1]!.seq : query.after };
    },
  );

  api.route(
    {
      method: 'post',
      path: '/executions/:id/cancel',
      summary:
        'Cancel a queued or running execution (ADMIN, MANAGER, OPERATOR): Temporal cancellation, which reaches the host as notifications/cancelled',
      tags: ['executions'],
      request: { params: IdParams },
      responses: {
        202: { description: 'Cancellation requested; the execution becomes CANCELLED', schema: StartedOut },
        409: { description: 'already_finished' },
      },
      temporalUnavailable: 'the cancel may not have reached the run; try again',
    },
    async (ctx, { params, em, auth, actor }) => {
      const execution = await loadExecution(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('cancel', execution);
      await cancelExecution(deps, actor, execution);
      ctx.status = 202;
      ctx.body = { executionId: execution.id, workflowId: execution.workflowId };
    },
  );

  api.route(
    {
      method: 'post',
      path: '/executions/:id/input',
      summary:
        "Answer the run's pending question (ADMIN, MANAGER, OPERATOR: who may run the agent): accept with content fitting its schema, decline, or cancel; the run goes on",
      tags: ['executions'],
      request: { params: IdParams, body: InputBody },
      before: [rateLimit(deps, 'answer-input')],
      responses: {
        200: { description: 'Answered; the run is RUNNING again and its host gets the answer', schema: InputAnsweredOut },
        409: { description: 'no_pending_input: nothing waits for an answer (never asked, already answered, expired, run ended)' },
      },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const execution = await loadExecution(em, auth, params.id);
      // Answering steers the run, as starting it does: `execute` on its agent.
      ForbiddenError.from(auth.ability).throwUnlessCan(
        'execute',
        execution.agent
          ? await em.findOneOrFail(Agent, execution.agent.id)
          : subject('Agent', { organization: { id: auth.organizationId } } as unknown as Agent),
      );
      const { input, signalled } = await answerInput(deps, actor, execution.id, body);
      if (!signalled)
        deps.logger.warn(
          { executionId: execution.id, inputId: input.id },
          'answered input not signalled to its workflow; the workflow finds the answer when it re-reads the row',
        );
      ctx.body = { inputId: input.id, status: 'ANSWERED' };
    },
  );
}
