import { ForbiddenError, subject } from '@casl/ability';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, Execution, Organization, Task } from '../../../entities';
import { AppError, fieldError } from '../../../domain/errors';
import { cronGapBelow, ScheduleSpecError, nextCronTimes } from '../../../domain/tasks/schedule-spec';
import { tooFrequent } from '../../../domain/tasks/task-rules';
import {
  cancelTaskRuns,
  createTask,
  deleteTask,
  runTaskNow,
  setTaskEnabled,
  updateTask,
  type TaskFields,
} from '../../../domain/tasks/task-commands';
import { countsOf, lastRun, NO_RUNS, runCounts } from '../../../domain/tasks/task-queries';
import { computedRunTimes, scheduleRunTimes } from '../../../domain/tasks/task-schedule';
import type { ApiRouter } from '../../api-router';
import type { AuthContext } from '../../auth/authenticate';
import type { AppDeps } from '../../deps';
import { scopedPage } from '../../list';
import { loadTask } from '../../loaders';
import { taskPage } from './tasks.list';
import { rateLimit } from '../../rate-limit';
import { streamExecution, wantsEventStream } from '../../realtime/sse';
import { IdParams } from '../common.schemas';
import { presentExecution } from '../executions/executions.presenters';
import { presentTask } from './tasks.presenters';
import {
  CancelTaskBody,
  CreateTaskBody,
  DeleteTaskQuery,
  ListTasksQuery,
  PreviewScheduleBody,
  PreviewScheduleOut,
  TaskCancelledOut,
  TaskDetailOut,
  TaskExecutionsQuery,
  TaskOut,
  TaskPage,
  TaskRunPage,
  TaskStartedOut,
  UpdateTaskBody,
} from './tasks.schemas';

async function loadAgentRef(em: EntityManager, auth: AuthContext, agentId: string | null | undefined): Promise<Agent | null | undefined> {
  if (agentId === undefined || agentId === null) return agentId;
  const agent = await em.findOne(Agent, { id: agentId, organization: auth.organizationId }, { populate: ['server'] });
  if (!agent) throw fieldError('body.agentId', 'no such agent in your organisation', 'not_found');
  return agent;
}

type Body = Partial<Record<keyof TaskFields | 'agentId', unknown>> & { scheduledAt?: string | null; agentId?: string | null };

/** The body's fields as the entity's (dates parsed, the agent loaded in the caller's organisation). */
async function taskFields(em: EntityManager, auth: AuthContext, body: Body): Promise<Partial<TaskFields>> {
  const { agentId, scheduledAt, ...rest } = body;
  return {
    ...(rest as Partial<TaskFields>),
    ...(agentId !== undefined ? { agent: await loadAgentRef(em, auth, agentId) } : {}),
    ...(scheduledAt !== undefined ? { scheduledAt: scheduledAt === null ? null : new Date(scheduledAt) } : {}),
  } as Partial<TaskFields>;
}

export function taskRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['tasks'];

  async function present(em: EntityManager, task: Task, detail = false) {
    const counts = countsOf(await runCounts(em, [task.id]), task.id);
    const nextRunTimes = detail ? await scheduleRunTimes(deps.temporal, task) : computedRunTimes(task);
    return {
      ...presentTask(task, counts, nextRunTimes),
      ...(detail ? { lastRun: await lastRun(em, task).then((e) => (e ? presentExecution(e) : null)) } : {}),
    };
  }

  api.route(
    {
      method: 'get',
      path: '/tasks',
      summary: "List the organisation's tasks",
      tags,
      request: { query: ListTasksQuery },
      responses: { 200: { description: 'A page of tasks', schema: TaskPage } },
    },
    async (ctx, { query, em, auth }) => {
      ctx.body = await taskPage(em, auth, query);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tasks',
      summary:
        'Create a task (ADMIN, MANAGER, OPERATOR): run now, once at scheduledAt, or on a cron in a time zone (a Temporal Schedule task-<id>)',
      tags,
      request: { body: CreateTaskBody },
      before: [rateLimit(deps, 'save-task')],
      responses: {
        201: { description: 'Created', schema: TaskOut },
      },
      temporalUnavailable: 'the schedule could not be created, and nothing was saved',
    },
    async (ctx, { body, em, auth, actor }) => {
      const draft = { organization: em.getReference(Organization, auth.organizationId) };
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('Task', draft as unknown as Task));
      const fields = await taskFields(em, auth, body);
      const task = await em.transactional((tx) =>
        createTask(tx, deps.temporal, actor, { agent: null, ...fields } as TaskFields, deps.config.tasks),
      );
      ctx.status = 201;
      ctx.set('Location', `/api/tasks/${task.id}`);
      ctx.body = presentTask(task, NO_RUNS, computedRunTimes(task));
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tasks/preview-schedule',
      summary: 'The next occurrences of a cron expression in a time zone, or a 400 naming what is wrong with it',
      tags,
      request: { body: PreviewScheduleBody },
      responses: { 200: { description: 'The next occurrences', schema: PreviewScheduleOut } },
    },
    async (ctx, { body }) => {
      try {
        const times = nextCronTimes(body.cronExpression, body.timezone, body.count);
        const close = cronGapBelow(body.cronExpression, body.timezone, deps.config.tasks.minIntervalSeconds);
        if (close) throw fieldError('body.cronExpression', tooFrequent(close, deps.config.tasks.minIntervalSeconds), 'too_frequent');
        ctx.body = { cronExpression: body.cronExpression, timezone: body.timezone, nextRunTimes: times.map((d) => d.toISOString()) };
      } catch (error) {
        if (!(error instanceof ScheduleSpecError)) throw error;
        throw new AppError(400, 'validation_failed', 'Request validation failed', [
          { path: `body.${error.field}`, message: error.message, code: error.field === 'timezone' ? 'invalid_timezone' : 'invalid_cron' },
        ]);
      }
    },
  );

  api.route(
    {
      method: 'get',
      path: '/tasks/:id',
      summary: 'One task, with the next 5 occurrences from its schedule, its last run and its counts',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The task', schema: TaskDetailOut } },
    },
    async (ctx, { params, em, auth }) => {
      const task = await loadTask(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', task);
      ctx.body = await present(em, task, true);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/tasks/:id',
      summary: 'Change a task (ADMIN, MANAGER, OPERATOR); its schedule follows (spec, zone, paused with enabled)',
      tags,
      request: { params: IdParams, body: UpdateTaskBody },
      before: [rateLimit(deps, 'save-task')],
      responses: { 200: { description: 'Updated', schema: TaskOut } },
      temporalUnavailable: 'nothing was changed',
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const task = await em.transactional(async (tx) => {
        const found = await loadTask(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', found);
        return updateTask(tx, deps.temporal, actor, found, await taskFields(tx, auth, body), deps.config.tasks);
      });
      ctx.body = await present(em, task);
    },
  );

  for (const [path, enabled] of [
    ['pause', false],
    ['resume', true],
  ] as const) {
    api.route(
      {
        method: 'post',
        path: `/tasks/:id/${path}`,
        summary: enabled
          ? 'Enable a task (ADMIN, MANAGER, OPERATOR): its schedule resumes'
          : 'Disable a task (ADMIN, MANAGER, OPERATOR): its schedule pauses; runs already going go on',
        tags,
        request: { params: IdParams },
        responses: { 200: { description: enabled ? 'Enabled' : 'Disabled', schema: TaskOut } },
        temporalUnavailable: 'nothing was changed',
      },
      async (ctx, { params, em, auth, actor }) => {
        const task = await em.transactional(async (tx) => {
          const found = await loadTask(tx, auth, params.id);
          ForbiddenError.from(auth.ability).throwUnlessCan('update', found);
          return setTaskEnabled(tx, deps.temporal, actor, found, enabled, deps.config.tasks);
        });
        ctx.body = await present(em, task);
      },
    );
  }

  api.route(
    {
      method: 'delete',
      path: '/tasks/:id',
      summary:
        'Delete a task (ADMIN, MANAGER, OPERATOR) and its schedule; 409 while runs are not ended unless ?force=true (they are cancelled); its runs stay under /api/executions?taskId=',
      tags,
      request: { params: IdParams, query: DeleteTaskQuery },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'task_running' } },
      temporalUnavailable: 'the task was not deleted, or (with ?force=true) it was and some of its runs may not have been cancelled',
    },
    async (ctx, { params, query, em, auth, actor }) => {
      const task = await em.transactional(async (tx) => {
        const found = await loadTask(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', found);
        await deleteTask(tx, deps.temporal, actor, found, query.force === 'true');
        return found;
      });
      if (query.force === 'true') await cancelTaskRuns(deps, actor, task);
      ctx.status = 204;
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tasks/:id/run',
      summary:
        "Run a task now (ADMIN, MANAGER, OPERATOR), under its overlap policy, decided before the answer: 202 {executionId, workflowId, status} with Location: /api/executions/<executionId> (the run exists when the answer leaves), or with Accept: text/event-stream the run's events as SSE until it ends",
      tags,
      request: { params: IdParams },
      before: [rateLimit(deps, 'execute')],
      responses: {
        202: {
          description: 'Decided and started: the run is RUNNING or QUEUED, or already SKIPPED or FAILED with its reason (error)',
          schema: TaskStartedOut,
        },
        409: { description: 'task_disabled' },
      },
      temporalUnavailable: 'the run could not be started, and it is recorded FAILED',
    },
    async (ctx, { params, em, auth, actor }) => {
      const task = await loadTask(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', task);
      const started = await runTaskNow(deps, actor, task);
      if (wantsEventStream(ctx)) return streamExecution(ctx, deps, auth, started.executionId, 0);
      ctx.status = 202;
      ctx.set('Location', `/api/executions/${started.executionId}`);
      ctx.body = started;
    },
  );

  api.route(
    {
      method: 'post',
      path: '/tasks/:id/cancel',
      summary:
        "Cancel the task's runs not ended (ADMIN, MANAGER, OPERATOR), or with {executionId} that one: the host gets notifications/cancelled; queued and waiting runs never start",
      tags,
      request: { params: IdParams, body: CancelTaskBody },
      responses: {
        202: { description: 'Cancellation requested', schema: TaskCancelledOut },
        409: { description: 'already_finished (with executionId)' },
      },
      temporalUnavailable: 'the cancel may not have reached every run; try again',
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const task = await loadTask(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', task);
      ctx.status = 202;
      ctx.body = { cancelled: await cancelTaskRuns(deps, actor, task, body.executionId) };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/tasks/:id/executions',
      summary: "The task's runs, newest first, skipped occurrences included (status SKIPPED, error = the reason)",
      tags,
      request: { params: IdParams, query: TaskExecutionsQuery },
      responses: { 200: { description: 'A page of runs', schema: TaskRunPage } },
    },
    async (ctx, { params, query, em, auth }) => {
      const task = await loadTask(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', task);
      const filters: Record<string, unknown>[] = [{ task: task.id }];
      if (query.status) filters.push({ status: query.status });
      if (query.trigger) filters.push({ trigger: query.trigger });
      if (query.from) filters.push({ createdAt: { $gte: new Date(query.from) } });
      if (query.to) filters.push({ createdAt: { $lt: new Date(query.to) } });
      ctx.body = await scopedPage(em, Execution, auth, 'Execution', query, filters, (e: Execution) => presentExecution(e));
    },
  );
}
