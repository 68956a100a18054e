import { ForbiddenError, subject } from '@casl/ability';
import type { McpServer as McpProtocolServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Agent, ExecutionTrigger } from '../../entities';
import type { Actor } from '../../domain/actor';
import { cancelExecution } from '../../domain/runs/cancel';
import { answerInput } from '../../domain/runs/inputs';
import { startExecution } from '../../domain/runs/start-execution';
import { runTaskNow } from '../../domain/tasks/task-commands';
import type { AuthContext } from '../auth/authenticate';
import type { AppDeps } from '../deps';
import { loadAgentByIdOrName, loadExecution, loadTask } from '../loaders';
import { agentPage } from '../routes/agents/agents.list';
import { AgentPage, ListAgentsQuery } from '../routes/agents/agents.schemas';
import { executionDetail } from '../routes/executions/executions.detail';
import { waitingInputPage } from '../routes/executions/executions.list';
import {
  ExecuteBody,
  ExecutionDetailOut,
  ExecutionOut,
  InputAnsweredOut,
  InputBody,
  ListExecutionsQuery,
  StartedOut,
} from '../routes/executions/executions.schemas';
import { serverPage } from '../routes/servers/servers.list';
import { ListServersQuery, ServerPage } from '../routes/servers/servers.schemas';
import { taskPage } from '../routes/tasks/tasks.list';
import { ListTasksQuery, TaskPage, TaskStartedOut } from '../routes/tasks/tasks.schemas';
import { pageQuery, pageSchema } from '../pagination';
import { z } from '../zod';
import { guarded, runResult, waitForRun } from './mcp-results';

/** Who calls the tools: an API key's owner, with the key's abilities (a run token will be another kind). */
export interface McpCaller {
  auth: AuthContext;
  actor: Actor;
}

/** POST /api/agents/:id/execute's body, with the agent named in it and the choice to wait. */
const ExecutePromptInput = z
  .strictObject({
    agent: z
      .string()
      .trim()
      .min(1)
      .max(200)
      .describe("The agent's id or name (a name shared by agents on several servers is refused: use the id)"),
    prompt: ExecuteBody.shape.prompt,
    context: ExecuteBody.shape.context,
    wait: z
      .boolean()
      .default(true)
      .describe(
        'Wait for the run to end (default), sending progress notifications; false answers at once with the run id and its status then',
      ),
  })
  .refine((b) => !b.context || JSON.stringify(b.context).length <= 100_000, {
    message: 'context is larger than 100 kB',
    path: ['context'],
  });

/** POST /api/executions/:id/input's body, with the execution named in it. */
const AnswerInput = z
  .strictObject({ executionId: z.uuid().describe('The execution waiting for an answer (WAITING_INPUT)'), ...InputBody.shape })
  .refine((b) => !b.content || JSON.stringify(b.content).length <= 100_000, {
    message: 'content is larger than 100 kB',
    path: ['content'],
  });

/** What `execute_prompt` answers (mcp-results.ts `runResult`): the run's end, or its status when not waiting. */
const RunResultOut = z.object({
  executionId: z.uuid(),
  status: ExecutionOut.shape.status,
  output: z.string().nullable(),
  data: z.record(z.string(), z.unknown()).optional().describe("The host's structured result"),
  error: z.string().optional(),
});

const ExecutionRef = z.strictObject({ executionId: z.uuid().describe('An execution id (from execute_prompt)') });

/** GET /api/executions's query, the status fixed to WAITING_INPUT. */
const WaitingInputsQuery = z.strictObject({
  ...pageQuery,
  agentId: ListExecutionsQuery.shape.agentId,
  taskId: ListExecutionsQuery.shape.taskId,
});

/** A page of GET /api/executions's runs, each with GET /api/executions/:id's pendingInput. */
const WaitingInputPage = pageSchema(ExecutionOut.extend({ pendingInput: ExecutionDetailOut.shape.pendingInput }));

const TaskRef = z.strictObject({ taskId: z.uuid().describe('A task id (from list_tasks)') });

/**
 * The tools an API key's MCP client gets. Each does what its REST route does: the same
 * loaders (another organisation's ids are "not found"), the same CASL check, the same domain
 * command (so audit, limits and events are the same), the same presenters.
 */
export function registerKeyTools(server: McpProtocolServer, deps: AppDeps, caller: McpCaller): void {
  const { auth, actor } = caller;

  server.registerTool(
    'list_agents',
    {
      description: "List the organisation's agents (as GET /api/agents: a page, with nextCursor)",
      inputSchema: ListAgentsQuery,
      outputSchema: AgentPage,
    },
    guarded(deps, 'list_agents', async (query: z.output<typeof ListAgentsQuery>, em) => {
      return agentPage(em, auth, query);
    }),
  );

  server.registerTool(
    'list_servers',
    { description: "List the organisation's MCP servers (as GET /api/servers)", inputSchema: ListServersQuery, outputSchema: ServerPage },
    guarded(deps, 'list_servers', async (query: z.output<typeof ListServersQuery>, em) => {
      return serverPage(em, auth, query);
    }),
  );

  server.registerTool(
    'list_tasks',
    {
      description:
        "List the organisation's tasks (as GET /api/tasks: a page, with nextCursor), each with its schedule, run counts and agentProblem",
      inputSchema: ListTasksQuery,
      outputSchema: TaskPage,
    },
    guarded(deps, 'list_tasks', async (query: z.output<typeof ListTasksQuery>, em) => {
      return taskPage(em, auth, query);
    }),
  );

  server.registerTool(
    'get_execution',
    {
      description: 'One execution with its output, live progress and any question it waits on (as GET /api/executions/:id)',
      inputSchema: ExecutionRef,
      outputSchema: ExecutionDetailOut,
    },
    guarded(deps, 'get_execution', async ({ executionId }: z.output<typeof ExecutionRef>, em) => {
      const execution = await loadExecution(em, auth, executionId);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', execution);
      return executionDetail(deps, em, execution);
    }),
  );

  server.registerTool(
    'execute_prompt',
    {
      description:
        'Run a prompt on an ACTIVE agent (ADMIN, MANAGER, OPERATOR keys), as POST /api/agents/:id/execute; by default waits for the end and returns {executionId, status, output, data?, error?}',
      inputSchema: ExecutePromptInput,
      outputSchema: RunResultOut,
    },
    guarded(deps, 'execute_prompt', async (input: z.output<typeof ExecutePromptInput>, em, extra) => {
      const agent = await loadAgentByIdOrName(em, auth, input.agent);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', agent);
      const execution = await startExecution(deps, actor, {
        agent,
        prompt: input.prompt,
        context: input.context,
        trigger: ExecutionTrigger.API,
      });
      deps.metrics.runStarted(execution);
      return runResult(input.wait ? await waitForRun(deps, execution.id, extra) : execution);
    }),
  );

  server.registerTool(
    'run_task',
    {
      description:
        "Run a task now (ADMIN, MANAGER, OPERATOR keys), as POST /api/tasks/:id/run, under its overlap policy: {executionId, workflowId, status} (RUNNING, QUEUED, or SKIPPED/FAILED with the reason as the run's error); follow it with get_execution",
      inputSchema: TaskRef,
      outputSchema: TaskStartedOut,
    },
    guarded(deps, 'run_task', async ({ taskId }: z.output<typeof TaskRef>, em) => {
      const task = await loadTask(em, auth, taskId);
      ForbiddenError.from(auth.ability).throwUnlessCan('execute', task);
      return runTaskNow(deps, actor, task);
    }),
  );

  server.registerTool(
    'cancel_execution',
    {
      description:
        'Cancel a queued or running execution (ADMIN, MANAGER, OPERATOR keys), as POST /api/executions/:id/cancel; it then ends CANCELLED (a waiting execute_prompt returns that)',
      inputSchema: ExecutionRef,
      outputSchema: StartedOut,
    },
    guarded(deps, 'cancel_execution', async ({ executionId }: z.output<typeof ExecutionRef>, em) => {
      const execution = await loadExecution(em, auth, executionId);
      ForbiddenError.from(auth.ability).throwUnlessCan('cancel', execution);
      await cancelExecution(deps, actor, execution);
      return { executionId: execution.id, workflowId: execution.workflowId };
    }),
  );

  server.registerTool(
    'list_waiting_inputs',
    {
      description:
        "The runs waiting for an answer (WAITING_INPUT), newest first, each with its question (pendingInput: message, requestedSchema, expiresAt): GET /api/executions?status=WAITING_INPUT with each run's pendingInput; answer with answer_input",
      inputSchema: WaitingInputsQuery,
      outputSchema: WaitingInputPage,
    },
    guarded(deps, 'list_waiting_inputs', async (query: z.output<typeof WaitingInputsQuery>, em) => {
      return waitingInputPage(em, auth, query);
    }),
  );

  server.registerTool(
    'answer_input',
    {
      description:
        "Answer the question a run waits on (get_execution's pendingInput), as POST /api/executions/:id/input: accept with content fitting its requestedSchema, decline, or cancel; the run goes on",
      inputSchema: AnswerInput,
      outputSchema: InputAnsweredOut,
    },
    guarded(deps, 'answer_input', async ({ executionId, ...body }: z.output<typeof AnswerInput>, em) => {
      const execution = await loadExecution(em, auth, executionId);
      // Answering steers the run, as starting it does: `execute` on its agent (as the REST route).
      ForbiddenError.from(auth.ability).throwUnlessCan(
        'execute',
        execution.agent
          ? await em.findOneOrFail(Agent, execution.agent.id)
          : subject('Agent', { organization: { id: auth.organizationId } } as unknown as Agent),
      );
      const { input } = await answerInput(deps, actor, execution.id, body);
      return { inputId: input.id, status: 'ANSWERED' };
    }),
  );
}
