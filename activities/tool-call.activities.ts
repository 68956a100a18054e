import { ApplicationFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { Execution, ExecutionStatus, type Agent } from '../entities';
import { ExecutionLog } from '../domain/runs/execution-log';
import { executionRef, isFinal } from '../domain/runs/execution-status';
import { toolApproval, toolApprovalQuestion } from '../domain/runs/tool-approval';
import { allowedToolsFor, assertToolCallAllowed, ToolCallRefused } from '../domain/tools/allowed-tools';
import { toolResultText } from '../lib/mcp-client';
import { inputTimeoutMessage } from '../workflows/contracts/agent-execution';
import type { ActivityDeps } from './deps';
import type { PromptOutcome, WaitingInput } from './executions.activities';
import { inputWaitOf } from './input-answerer';
import { withRunControl } from './run-control';
import { ServerCallFailed, serverGateway, type ServerGateway } from './server-gateway';

/** One attempt of a `kind: tool` run: what its steps share. */
interface ToolCallRun {
  execution: Execution;
  agent: Agent;
  log: ExecutionLog;
  toolCall: { toolCallId: string; name: string };
  toolArguments: Record<string, unknown>;
}

type ToolCallDeps = Pick<ActivityDeps, 'orm' | 'config' | 'running'> & { gateway: ServerGateway };

/** Ends the run before anything reaches the server, with the reason in its log. */
async function refuse({ log, toolCall, toolArguments }: ToolCallRun, reason: string): Promise<never> {
  await log.append('tool_call', { toolCall: { ...toolCall, arguments: toolArguments } });
  await log.append('tool_result', { toolCall: { ...toolCall, result: { error: `refused: ${reason}` } } });
  await log.flush();
  throw ApplicationFailure.nonRetryable(`refused: ${reason}`, 'ExecutionFailed');
}

/**
 * A direct call bypasses the host's own enforcement of allowedTools: the agent's grants are
 * checked here, and a refusal ends the run before anything reaches the server. So is its
 * approval gate: the host would ask before the command, so this asks before the call. Answers
 * the wait for a person, or nothing when the call may go.
 */
async function passGates(
  { orm, config }: ToolCallDeps,
  em: EntityManager,
  run: ToolCallRun,
  segmentStartedAt: number,
): Promise<WaitingInput | undefined> {
  const { execution, agent, toolCall } = run;
  try {
    await assertToolCallAllowed(em, agent.id, toolCall.name);
  } catch (error) {
    if (!(error instanceof ToolCallRefused)) throw error;
    await refuse(run, error.message);
  }
  const gated = (await allowedToolsFor(em, agent.id)).some((tool) => tool.name === toolCall.name && tool.requiresApproval);
  if (!gated) return undefined;
  const approval = await toolApproval(
    em,
    execution.id,
    toolApprovalQuestion(agent.name, toolCall.name, run.toolArguments),
    config.executions.inputTimeoutMs,
  );
  if (approval.state === 'pending') {
    const runMsUsed = execution.runMsUsed + (Date.now() - segmentStartedAt);
    await orm.em.fork().nativeUpdate(Execution, { id: execution.id }, { runMsUsed });
    return { waitingInput: inputWaitOf(approval.input), runMsUsed };
  }
  if (approval.state === 'expired')
    throw ApplicationFailure.nonRetryable(inputTimeoutMessage(inputWaitOf(approval.input).timeoutMs), 'InputTimedOut');
  if (approval.state === 'refused') await refuse(run, approval.reason);
  return undefined;
}

/** The call itself, within the run's cancel and heartbeat; a failure to reach the server is the run's end, in its log. */
async function callTool(
  { config, running, gateway }: ToolCallDeps,
  { execution, agent, log, toolCall, toolArguments }: ToolCallRun,
): Promise<CallToolResult> {
  const timeoutMs = Math.max(1000, Math.min(Context.current().info.startToCloseTimeoutMs || config.mcp.timeoutMs, 24 * 3600_000));
  try {
    return await withRunControl(running, execution.id, (control) =>
      gateway.withServer(
        agent.server,
        async ({ connection }) =>
          (await connection.client.callTool({ name: toolCall.name, arguments: toolArguments }, undefined, {
            signal: control.signal,
            timeout: timeoutMs,
            maxTotalTimeout: timeoutMs,
          })) as CallToolResult,
        { timeoutMs, canRetry: () => !control.aborted() },
      ),
    );
  } catch (error) {
    if (error instanceof ServerCallFailed) {
      await log.append('tool_result', { toolCall: { ...toolCall, result: { error: error.message } } });
      throw ApplicationFailure.nonRetryable(error.message, 'ExecutionFailed');
    }
    throw error;
  }
}

/** The tool's answer in the log (`tool_result`) and on the row: its text is the run's output. */
async function recordResult(
  { orm }: ToolCallDeps,
  { execution, log, toolCall }: ToolCallRun,
  result: CallToolResult,
): Promise<PromptOutcome> {
  const text = toolResultText(result.content);
  await log.append('tool_result', {
    toolCall: { ...toolCall, result: result.structuredContent ?? text },
    ...(result.isError ? { data: { isError: true } } : {}),
  });
  await log.flush();
  await orm.em
    .fork()
    .nativeUpdate(Execution, { id: execution.id }, { output: text || undefined, result: result.structuredContent ?? undefined });
  if (result.isError)
    return { success: false, error: `the tool ${toolCall.name} reported an error: ${text.slice(0, 500) || 'no details'}` };
  return { success: true };
}

/**
 * The activity of a `kind: tool` task's run (the occurrence's child `agentExecution` calls it
 * instead of executePrompt): its one tool, with its arguments, on the agent's server.
 */
export function createToolCallActivities(deps: ActivityDeps) {
  const { orm } = deps;
  const callDeps: ToolCallDeps = { ...deps, gateway: serverGateway(deps) };

  return {
    /**
     * A `kind: tool` task's run: its one tool, with its arguments, on the agent's server. The
     * log gets `tool_call`, then `tool_result`; the tool's text is the run's output. A tool
     * granted with requiresApproval is asked about first (domain/runs/tool-approval.ts): while
     * the question is open this returns `waitingInput` having sent nothing, the workflow waits
     * for the answer and calls this again, which then calls the tool or refuses.
     */
    async executeToolCall(executionId: string): Promise<PromptOutcome | WaitingInput> {
      const segmentStartedAt = Date.now();
      const attempt = Context.current().info.attempt;
      const em = orm.em.fork();
      const execution = await em.findOne(Execution, executionId, {
        populate: ['agent', 'agent.server', 'agent.server.masterTokenCiphertext'],
      });
      if (!execution?.agent || !execution.toolName)
        throw ApplicationFailure.nonRetryable('the execution, its agent or its tool no longer exists', 'ExecutionFailed');
      if (isFinal(execution.status)) return { success: execution.status === ExecutionStatus.COMPLETED, error: execution.error };
      if (attempt > execution.attempt) {
        execution.attempt = attempt;
        await em.flush();
      }
      const run: ToolCallRun = {
        execution,
        agent: execution.agent,
        log: new ExecutionLog(orm, executionRef(execution), attempt, deps.config.database.outageGraceMs),
        toolCall: { toolCallId: `${executionId}:${attempt}`, name: execution.toolName },
        toolArguments: execution.toolArguments ?? {},
      };
      const waiting = await passGates(callDeps, em, run, segmentStartedAt);
      if (waiting) return waiting;
      await run.log.append('tool_call', { toolCall: { ...run.toolCall, arguments: run.toolArguments } });
      return recordResult(callDeps, run, await callTool(callDeps, run));
    },
  };
}
