import { ForbiddenError, subject } from '@casl/ability';
import { RequestContext } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { McpServer as McpProtocolServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { Agent, Execution, ExecutionTrigger, FINAL_EXECUTION_STATUSES } from '../../entities';
import type { Actor } from '../../domain/actor';
import { AppError } from '../../domain/errors';
import { cancelExecution } from '../../domain/runs/cancel';
import { eventsAfter } from '../../domain/runs/execution-log';
import { answerInput, pendingInputOf } from '../../domain/runs/inputs';
import { startExecution } from '../../domain/runs/start-execution';
import type { AuthContext } from '../auth/authenticate';
import type { AppDeps } from '../deps';
import { loadAgentByIdOrName, loadExecution } from '../loaders';
import { agentPage } from '../routes/agents/agents.list';
import { ListAgentsQuery } from '../routes/agents/agents.schemas';
import { presentExecution, presentPendingInput } from '../routes/executions/executions.presenters';
import { ExecuteBody, InputBody } from '../routes/executions/executions.schemas';
import { serverPage } from '../routes/servers/servers.list';
import { ListServersQuery } from '../routes/servers/servers.schemas';
import { z } from '../zod';

/** Who calls the tools: an API key's owner, with the key's abilities (a run token will be another kind). */
export interface McpCaller {
  auth: AuthContext;
  actor: Actor;
}

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** How often a waiting `execute_prompt` reads the run's log: the log is in PostgreSQL, so any API instance can wait. */
const WAIT_POLL_MS = 250;

/**
 * A tool's answer: the value as JSON text (what every client shows) and as structured content
 * (what programs read). A refusal is a tool error, not a JSON-RPC error, so the model sees it.
 */
function answer(value: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value as Record<string, unknown> };
}

function refusal(message: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: message }] };
}

/**
 * Runs a tool body in its own EntityManager fork (as a REST request does) and turns the
 * domain's refusals into tool errors with the REST codes: `forbidden`, `not found`, ... Anything
 * else is logged and answered generically, like the REST error handler's 500.
 */
function guarded<A>(deps: AppDeps, tool: string, body: (args: A, em: EntityManager, extra: Extra) => Promise<unknown>) {
  return async (args: A, extra: Extra): Promise<CallToolResult> => {
    try {
      return answer(await RequestContext.create(deps.orm.em, () => body(args, deps.orm.em.getContext() as EntityManager, extra)));
    } catch (error) {
      if (error instanceof ForbiddenError) return refusal(`forbidden: ${error.message}`);
      if (error instanceof AppError)
        return refusal(error.status === 404 ? error.message.replace(/ not found$/, ': not found') : `${error.code}: ${error.message}`);
      deps.logger.error({ err: error, tool }, 'MCP tool failed');
      return refusal('internal_error: the tool failed; try again later');
    }
  };
}

/** What `execute_prompt` and `get_execution` return about a run. */
function runResult(execution: Execution) {
  return {
    executionId: execution.id,
    status: execution.status,
    output: execution.output ?? null,
    ...(execution.result ? { data: execution.result } : {}),
    ...(execution.error ? { error: execution.error } : {}),
  };
}

/**
 * Waits until the run is final, reading its event log: each new event is an MCP progress
 * notification when the client asked for them (a progressToken). Stops early when the client
 * goes away; the run goes on in Temporal either way.
 */
async function waitForRun(deps: AppDeps, executionId: string, extra: Extra): Promise<Execution> {
  const progressToken = extra._meta?.progressToken;
  let last = 0;
  for (;;) {
    const em = deps.orm.em.fork();
    const events = await eventsAfter(em, executionId, last);
    for (const event of events) {
      last = event.seq;
      if (progressToken === undefined) continue;
      const message =
        event.phase === 'status' ? `status: ${event.status}` : (event.progress?.message ?? event.output?.slice(0, 200) ?? event.phase);
      await extra.sendNotification({ method: 'notifications/progress', params: { progressToken, progress: event.seq, message } });
    }
    const execution = await em.findOneOrFail(Execution, executionId);
    if (FINAL_EXECUTION_STATUSES.includes(execution.status) || extra.signal.aborted) return execution;
    await new Promise((resolve) => setTimeout(resolve, WAIT_POLL_MS));
  }
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

const ExecutionRef = z.strictObject({ executionId: z.uuid().describe('An execution id (from execute_prompt)') });

/**
 * The tools an API key's MCP client gets. Each does what its REST route does: the same
 * loaders (another organisation's ids are "not found"), the same CASL check, the same domain
 * command (so audit, limits and events are the same), the same presenters.
 */
export function registerKeyTools(server: McpProtocolServer, deps: AppDeps, caller: McpCaller): void {
  const { auth, actor } = caller;

  server.registerTool(
    'list_agents',
    { description: "List the organisation's agents (as GET /api/agents: a page, with nextCursor)", inputSchema: ListAgentsQuery },
    guarded(deps, 'list_agents', async (query: z.output<typeof ListAgentsQuery>, em) => {
      return agentPage(em, auth, query);
    }),
  );

  server.registerTool(
    'list_servers',
    { description: "List the organisation's MCP servers (as GET /api/servers)", inputSchema: ListServersQuery },
    guarded(deps, 'list_servers', async (query: z.output<typeof ListServersQuery>, em) => {
      return serverPage(em, auth, query);
    }),
  );

  server.registerTool(
    'get_execution',
    { description: 'One execution with its output and any question it waits on (as GET /api/executions/:id)', inputSchema: ExecutionRef },
    guarded(deps, 'get_execution', async ({ executionId }: z.output<typeof ExecutionRef>, em) => {
      const execution = await loadExecution(em, auth, executionId);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', execution);
      const pending = await pendingInputOf(em, execution);
      return { ...presentExecution(execution, true), pendingInput: pending ? presentPendingInput(pending) : null };
    }),
  );

  server.registerTool(
    'execute_prompt',
    {
      description:
        'Run a prompt on an ACTIVE agent (ADMIN, MANAGER, OPERATOR keys), as POST /api/agents/:id/execute; by default waits for the end and returns {executionId, status, output, data?, error?}',
      inputSchema: ExecutePromptInput,
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
    'cancel_execution',
    {
      description:
        'Cancel a queued or running execution (ADMIN, MANAGER, OPERATOR keys), as POST /api/executions/:id/cancel; it then ends CANCELLED (a waiting execute_prompt returns that)',
      inputSchema: ExecutionRef,
    },
    guarded(deps, 'cancel_execution', async ({ executionId }: z.output<typeof ExecutionRef>, em) => {
      const execution = await loadExecution(em, auth, executionId);
      ForbiddenError.from(auth.ability).throwUnlessCan('cancel', execution);
      await cancelExecution(deps, actor, execution);
      return { executionId: execution.id, workflowId: execution.workflowId };
    }),
  );

  server.registerTool(
    'answer_input',
    {
      description:
        "Answer the question a run waits on (get_execution's pendingInput), as POST /api/executions/:id/input: accept with content fitting its requestedSchema, decline, or cancel; the run goes on",
      inputSchema: AnswerInput,
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
