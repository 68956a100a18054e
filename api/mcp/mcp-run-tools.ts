/**
 * The tools a running agent gets with its run token (`execute_prompt`'s `fleet`, docs/host-protocol.md):
 * its direct subordinates, delegating to one of them as a child run of its own, and reading or
 * cancelling those children. Nothing else of the organisation is in reach: another run's
 * executions, its own included, are "not found".
 */
import { createHash } from 'node:crypto';
import type { McpServer as McpProtocolServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, Execution } from '../../entities';
import type { Actor } from '../../domain/actor';
import { directSubordinatesOf, supervisorAndSubordinate } from '../../domain/agents/agent-rules';
import { AppError } from '../../domain/errors';
import { cancelExecution } from '../../domain/runs/cancel';
import type { RunPrincipal } from '../../domain/runs/run-token';
import { executionHandle } from '../../domain/temporal';
import { delegateUpdate, DELEGATION_REFUSED, type DelegateRequest } from '../../workflows/contracts/agent-execution';
import type { AppDeps } from '../deps';
import { ExecuteBody } from '../routes/executions/executions.schemas';
import { DELEGATION_CALL_META } from '../../lib/host-contract';
import { z } from '../zod';
import { guarded, runResult, waitForRun, type Extra } from './mcp-results';

const NoArguments = z.strictObject({});

const DelegateInput = z
  .strictObject({
    agent: z.string().trim().min(1).max(200).describe("A direct subordinate's id or name (list_subordinates)"),
    prompt: ExecuteBody.shape.prompt,
    context: ExecuteBody.shape.context,
    wait: z
      .boolean()
      .default(true)
      .describe("Wait for the child run to end (default), sending its progress; false answers at once with the child's id and status"),
  })
  .refine((b) => !b.context || JSON.stringify(b.context).length <= 100_000, {
    message: 'context is larger than 100 kB',
    path: ['context'],
  });

const ChildRef = z.strictObject({ executionId: z.uuid().describe('A child run of this run (from delegate)') });

const SubordinateOut = z.object({
  id: z.uuid(),
  name: z.string(),
  displayName: z.string().nullable(),
  role: z.string(),
  capabilities: z.array(z.string()),
  status: z.string(),
});

const RunResultOut = z.object({
  executionId: z.uuid(),
  status: z.string(),
  output: z.string().nullable().optional(),
  data: z.unknown().optional(),
  error: z.string().optional(),
});

/** The run's own agent: gone (deleted meanwhile) is the run's end as far as its token goes. */
async function runAgent(em: EntityManager, run: RunPrincipal): Promise<Agent> {
  const agent = await em.findOne(Agent, { id: run.agentId, organization: run.organizationId });
  if (!agent) throw AppError.notFound('Agent');
  return agent;
}

/** One of the run's own children; any other id, in this organisation or not, is "not found". */
async function ownChild(em: EntityManager, run: RunPrincipal, executionId: string): Promise<Execution> {
  const child = await em.findOne(Execution, { id: executionId, organization: run.organizationId, parentExecution: run.executionId });
  if (!child) throw AppError.notFound('Execution');
  return child;
}

/**
 * The Update's id: the same delegate call sent again is the same Update, which Temporal
 * answers once, with the same child. A call is named by the client's `_meta` call id when it
 * sends one (the reference host sends its engine's tool-call id, the same when a run is tried
 * again after a lost worker and different for two calls alike), else by its JSON-RPC id (a
 * client's retry of the same request; two alike calls on two sessions then share a child).
 */
function delegationUpdateId(run: RunPrincipal, agentId: string, input: z.output<typeof DelegateInput>, extra: Extra): string {
  const named = extra._meta?.[DELEGATION_CALL_META];
  const call = typeof named === 'string' && named.length > 0 && named.length <= 200 ? `call:${named}` : String(extra.requestId);
  const digest = createHash('sha256')
    .update(JSON.stringify([run.executionId, agentId, input.prompt, input.context ?? null, call]))
    .digest('base64url');
  return `delegate-${digest}`;
}

/** The parent's reason, when its workflow refused the Update (validator or handler). */
function refusalOf(error: unknown): string | undefined {
  if (!(error instanceof WorkflowUpdateFailedError)) return undefined;
  const cause = error.cause;
  return cause instanceof ApplicationFailure && cause.type === DELEGATION_REFUSED ? cause.message : undefined;
}

/**
 * Sends the Update and answers the child's id. While no worker handles it (one was lost mid-way
 * and the next is starting) the RPC times out: it is sent again with the same id, which
 * Temporal answers once, with the child the first try may already have recorded, until the
 * caller goes away or the token expires.
 */
async function sendDelegateUpdate(
  deps: AppDeps,
  run: RunPrincipal,
  { request, updateId, signal }: { request: DelegateRequest; updateId: string; signal: AbortSignal },
): Promise<string> {
  for (;;) {
    try {
      const { executionId } = await executionHandle(deps.temporal, run.executionId).executeUpdate(delegateUpdate, {
        args: [request],
        updateId,
      });
      return executionId;
    } catch (error) {
      const reason = refusalOf(error);
      if (reason) throw new AppError(409, 'delegation_refused', reason);
      if (error instanceof WorkflowNotFoundError) throw new AppError(409, 'run_ended', 'This run has ended: it cannot delegate');
      if (!(error instanceof WorkflowUpdateRPCTimeoutOrCancelledError) || signal.aborted || Date.now() >= run.expiresAt) throw error;
    }
  }
}

export function registerRunTools(server: McpProtocolServer, deps: AppDeps, run: RunPrincipal): void {
  const actor: Actor = { organizationId: run.organizationId, via: 'workflow' };

  server.registerTool(
    'list_subordinates',
    {
      description: "This agent's direct subordinates, the agents it may delegate to (with their status: only ACTIVE ones take runs)",
      inputSchema: NoArguments,
      outputSchema: { subordinates: z.array(SubordinateOut) },
    },
    guarded(deps, 'list_subordinates', async (_args: unknown, em) => {
      const agent = await runAgent(em, run);
      const subordinates = await directSubordinatesOf(em, agent);
      return {
        subordinates: subordinates.map((s) => ({
          id: s.id,
          name: s.name,
          displayName: s.displayName ?? null,
          role: s.role,
          capabilities: s.capabilities,
          status: s.status,
        })),
      };
    }),
  );

  server.registerTool(
    'delegate',
    {
      description:
        'Hand a prompt to a direct subordinate as a child run of this run; by default waits for its end and returns {executionId, status, output, data?, error?}. Refused past the depth (3) or fan-out (DELEGATION_MAX_CHILDREN) limits, or when this run has too little time left',
      inputSchema: DelegateInput,
      outputSchema: RunResultOut.shape,
    },
    guarded(deps, 'delegate', async (input: z.output<typeof DelegateInput>, em, extra) => {
      // The run's agent (gone: the run's end, as far as its token goes) and the subordinate, in one query.
      const { agent } = await supervisorAndSubordinate(em, { id: run.agentId, organizationId: run.organizationId }, input.agent);
      const executionId = await sendDelegateUpdate(deps, run, {
        request: {
          agentId: agent.id,
          prompt: input.prompt,
          ...(input.context ? { context: input.context } : {}),
          maxChildren: deps.config.delegation.maxChildren,
        },
        updateId: delegationUpdateId(run, agent.id, input, extra),
        signal: extra.signal,
      });
      if (input.wait) return runResult(await waitForRun(deps, executionId, extra));
      return runResult(await em.fork().findOneOrFail(Execution, executionId));
    }),
  );

  server.registerTool(
    'get_execution',
    { description: 'One child run of this run, with its output', inputSchema: ChildRef, outputSchema: RunResultOut.shape },
    guarded(deps, 'get_execution', async ({ executionId }: z.output<typeof ChildRef>, em) => {
      return runResult(await ownChild(em, run, executionId));
    }),
  );

  server.registerTool(
    'cancel_execution',
    { description: 'Cancel a child run of this run; it then ends CANCELLED (a waiting delegate returns that)', inputSchema: ChildRef },
    guarded(deps, 'cancel_execution', async ({ executionId }: z.output<typeof ChildRef>, em) => {
      const child = await ownChild(em, run, executionId);
      await cancelExecution(deps, actor, child);
      return { executionId: child.id };
    }),
  );
}
