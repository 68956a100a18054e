import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Execution, ExecutionStatus } from '../entities';
import { ExecutionLog } from '../domain/runs/execution-log';
import { executionRef, isFinal } from '../domain/runs/execution-status';
import type { RunDeps } from '../domain/runs/run-deps';
import { beginOccurrence, endOccurrence, resumeOccurrence, retryOccurrence, settleAttempt, timeOutRun } from '../domain/tasks/occurrences';
import { toolResultText } from '../lib/mcp-client';
import type { AttemptOutcome, OccurrenceRequest } from '../workflows/contracts/task-run';
import { allowedToolsFor, assertToolCallAllowed, ToolCallRefused } from '../domain/tools/allowed-tools';
import { toolApproval, toolApprovalQuestion } from '../domain/runs/tool-approval';
import { inputTimeoutMessage } from '../workflows/contracts/agent-execution';
import type { ActivityDeps } from './deps';
import type { PromptOutcome, WaitingInput } from './executions.activities';
import { inputWaitOf } from './input-answerer';
import { ServerCallFailed, serverGateway } from './server-gateway';

/**
 * The activities of a task's occurrence (workflows/task-run.workflow.ts): its decisions, taken
 * in domain/tasks/occurrences.ts under the task's lock, and the call of a `kind: tool` task's
 * tool on the agent's server, run by the occurrence's child `agentExecution`.
 */
export function createTaskActivities(deps: ActivityDeps) {
  const { orm, running, config } = deps;
  const gateway = serverGateway(deps);
  const runDeps: RunDeps = { orm, logger: deps.logger, temporal: { client: deps.temporalClient, taskQueue: config.temporal.taskQueue } };

  /**
   * Runs `fn` with a signal aborted by either cancel path (the fast one from the cancel route,
   * or Temporal's, delivered by the heartbeat); an aborted call ends as a cancel, never a failure.
   */
  async function cancellable<T>(executionId: string, fn: (signal: AbortSignal, cancelled: () => boolean) => Promise<T>): Promise<T> {
    const ctx = Context.current();
    const controller = running.register(executionId);
    const onTemporalCancel = () => controller.abort(new Error('cancelled'));
    ctx.cancellationSignal.addEventListener('abort', onTemporalCancel);
    const heartbeat = setInterval(() => ctx.heartbeat(), 1000);
    try {
      return await fn(controller.signal, () => controller.signal.aborted);
    } catch (error) {
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled');
      if (controller.signal.aborted) throw ApplicationFailure.nonRetryable('cancelled by request', 'ExecutionCancelled');
      throw error;
    } finally {
      clearInterval(heartbeat);
      ctx.cancellationSignal.removeEventListener('abort', onTemporalCancel);
      running.unregister(executionId, controller);
    }
  }

  return {
    beginOccurrence: (request: OccurrenceRequest) => beginOccurrence(runDeps, request),
    resumeOccurrence: (executionId: string) => resumeOccurrence(runDeps, executionId),
    retryOccurrence: (request: OccurrenceRequest) => retryOccurrence(runDeps, request),
    settleAttempt: (executionId: string, outcome: AttemptOutcome) => settleAttempt(runDeps, executionId, outcome),
    timeOutRun: (executionId: string, timeoutMs: number) => timeOutRun(runDeps, executionId, timeoutMs),
    endOccurrence: (taskId: string, executionId: string, outcome: AttemptOutcome) => endOccurrence(runDeps, taskId, executionId, outcome),

    /**
     * A `kind: tool` task's run: its one tool, with its arguments, on the agent's server. The
     * log gets `tool_call`, then `tool_result`; the tool's text is the run's output. A tool
     * granted with requiresApproval is asked about first (domain/runs/tool-approval.ts): while
     * the question is open this returns `waitingInput` having sent nothing, the workflow waits
     * for the answer and calls this again, which then calls the tool or refuses.
     */
    async executeToolCall(executionId: string): Promise<PromptOutcome | WaitingInput> {
      const ctx = Context.current();
      const segmentStartedAt = Date.now();
      const attempt = ctx.info.attempt;
      const em = orm.em.fork() as EntityManager;
      const execution = await em.findOne(Execution, executionId, { populate: ['agent', 'agent.server', 'agent.server.masterTokenCiphertext'] });
      if (!execution?.agent || !execution.toolName) throw ApplicationFailure.nonRetryable('the execution, its agent or its tool no longer exists', 'ExecutionFailed');
      if (isFinal(execution.status)) return { success: execution.status === ExecutionStatus.COMPLETED, error: execution.error };
      if (attempt > execution.attempt) {
        execution.attempt = attempt;
        await em.flush();
      }
      const agent = execution.agent;
      const toolArguments = execution.toolArguments ?? {};
      const log = new ExecutionLog(orm, executionRef(execution), attempt);
      const toolCall = { toolCallId: `${executionId}:${attempt}`, name: execution.toolName };
      /** Ends the run before anything reaches the server, with the reason in its log. */
      const refuse = async (reason: string): Promise<never> => {
        await log.append('tool_call', { toolCall: { ...toolCall, arguments: toolArguments } });
        await log.append('tool_result', { toolCall: { ...toolCall, result: { error: `refused: ${reason}` } } });
        await log.flush();
        throw ApplicationFailure.nonRetryable(`refused: ${reason}`, 'ExecutionFailed');
      };
      // A direct call bypasses the host's own enforcement of allowedTools: the agent's grants are
      // checked here, and a refusal ends the run before anything reaches the server.
      try {
        await assertToolCallAllowed(em, agent.id, execution.toolName);
      } catch (error) {
        if (!(error instanceof ToolCallRefused)) throw error;
        await refuse(error.message);
      }
      // ...and so is its approval gate: the host would ask before the command, so this asks before the call.
      const gated = (await allowedToolsFor(em, agent.id)).some((tool) => tool.name === toolCall.name && tool.requiresApproval);
      if (gated) {
        const approval = await toolApproval(em, executionId, toolApprovalQuestion(agent.name, toolCall.name, toolArguments), config.executions.inputTimeoutMs);
        if (approval.state === 'pending') {
          const runMsUsed = execution.runMsUsed + (Date.now() - segmentStartedAt);
          await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { runMsUsed });
          return { waitingInput: inputWaitOf(approval.input), runMsUsed };
        }
        if (approval.state === 'expired') throw ApplicationFailure.nonRetryable(inputTimeoutMessage(inputWaitOf(approval.input).timeoutMs), 'InputTimedOut');
        if (approval.state === 'refused') await refuse(approval.reason);
      }
      await log.append('tool_call', { toolCall: { ...toolCall, arguments: toolArguments } });
      const timeoutMs = Math.max(1000, Math.min(ctx.info.startToCloseTimeoutMs || config.mcp.timeoutMs, 24 * 3600_000));
      let result: CallToolResult;
      try {
        result = await cancellable(executionId, (signal, cancelled) =>
          gateway.withServer(
            agent.server,
            async ({ connection }) => (await connection.client.callTool({ name: toolCall.name, arguments: toolArguments }, undefined, { signal, timeout: timeoutMs, maxTotalTimeout: timeoutMs })) as CallToolResult,
            { timeoutMs, canRetry: () => !cancelled() },
          ),
        );
      } catch (error) {
        if (error instanceof ServerCallFailed) {
          await log.append('tool_result', { toolCall: { ...toolCall, result: { error: error.message } } });
          throw ApplicationFailure.nonRetryable(error.message, 'ExecutionFailed');
        }
        throw error;
      }
      const text = toolResultText(result.content);
      await log.append('tool_result', { toolCall: { ...toolCall, result: result.structuredContent ?? text }, ...(result.isError ? { data: { isError: true } } : {}) });
      await log.flush();
      await orm.em.fork().nativeUpdate(Execution, { id: executionId }, { output: text || undefined, result: result.structuredContent ?? undefined });
      if (result.isError) return { success: false, error: `the tool ${toolCall.name} reported an error: ${text.slice(0, 500) || 'no details'}` };
      return { success: true };
    },
  };
}
