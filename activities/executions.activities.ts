import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { LockMode } from '@mikro-orm/core';
import { Agent, AgentStatus, AgentToolPermission, Execution, ExecutionStatus, FINAL_EXECUTION_STATUSES, type TodoItem } from '../entities';
import { setAgentStatus } from '../domain/runs/agent-status';
import { openSecret, SecretDecryptionError } from '../lib/crypto';
import { ExecutionLog, executionNotice, insertExecutionEvent } from '../domain/runs/execution-log';
import { publishEvent } from '../domain/events';
import { McpConnectionError, describeMcpError, toolResultText } from '../lib/mcp-client';
import { masterTokenContext } from '../domain/servers/master-token';
import { urlPolicy } from '../lib/url-policy';
import { assertSafeUrl, UnsafeUrlError } from '../lib/ssrf';
import { signalProgress } from '../domain/temporal';
import type { ProgressSnapshot } from '../workflows/agent-execution.workflow';
import type { ActivityDeps } from './deps';

export type SlotAnswer = { started: true } | { started: false; rejected?: string };

export interface PromptOutcome {
  success: boolean;
  error?: string;
  tokensUsed?: number;
}

export interface FinishInput {
  status: 'COMPLETED' | 'FAILED' | 'CANCELLED' | 'TIMED_OUT';
  error?: string;
}

const OUTPUT_TAIL = 2000;
const PROGRESS_SIGNAL_EVERY_MS = 500;
const RUNNABLE: readonly AgentStatus[] = [AgentStatus.ACTIVE, AgentStatus.BUSY];

function isFinal(status: ExecutionStatus): boolean {
  return FINAL_EXECUTION_STATUSES.includes(status);
}


export function createExecutionActivities({ orm, config, logger, mcp, running, temporalClient }: ActivityDeps) {
  const policy = urlPolicy(config);

  return {
    /**
     * Takes one of the agent's `maxConcurrency` slots for this execution, in arrival order. The
     * agent row is locked while counting, so two executions never take the last slot together.
     */
    async acquireSlot(executionId: string): Promise<SlotAnswer> {
      const em = orm.em.fork() as EntityManager;
      const answer = await em.transactional(async (tx) => {
        const execution = await tx.findOne(Execution, executionId);
        if (!execution) return { started: false as const, rejected: 'the execution no longer exists' };
        if (execution.status === ExecutionStatus.RUNNING) return { started: true as const };
        if (execution.status !== ExecutionStatus.QUEUED) return { started: false as const, rejected: `the execution is already ${execution.status}` };
        if (!execution.agent) return { started: false as const, rejected: 'the agent was deleted' };
        const agent = await tx.findOneOrFail(Agent, execution.agent.id, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!RUNNABLE.includes(agent.status)) return { started: false as const, rejected: `the agent is ${agent.status}, not ACTIVE` };
        const [runningCount, ahead] = await Promise.all([
          tx.count(Execution, { agent, status: ExecutionStatus.RUNNING }),
          tx.count(Execution, {
            agent,
            status: ExecutionStatus.QUEUED,
            $or: [{ createdAt: { $lt: execution.createdAt } }, { createdAt: execution.createdAt, id: { $lt: execution.id } }],
          }),
        ]);
        if (runningCount + ahead >= agent.maxConcurrency) return { started: false as const };
        // Slot, BUSY and the RUNNING event commit together; the notices go out after commit.
        execution.status = ExecutionStatus.RUNNING;
        execution.startedAt = new Date();
        const previous = agent.status;
        agent.status = AgentStatus.BUSY;
        await tx.flush();
        const ref = { id: execution.id, organizationId: execution.organization.id, agentId: agent.id, taskId: execution.task?.id };
        const event = await insertExecutionEvent(tx, ref, execution.attempt, 'status', { status: ExecutionStatus.RUNNING });
        return { started: true as const, notices: { ref, event, previous } };
      });
      if ('notices' in answer && answer.notices) {
        const { ref, event, previous } = answer.notices;
        await publishEvent(em, executionNotice(ref, event));
        if (previous !== AgentStatus.BUSY) {
          await publishEvent(em, { type: 'agent:status', organizationId: ref.organizationId, agentId: ref.agentId, status: AgentStatus.BUSY, previousStatus: previous, reason: 'executing', at: new Date().toISOString() });
        }
        return { started: true };
      }
      return answer.started ? { started: true } : answer;
    },

    /**
     * Runs the prompt on the agent's server: `execute_prompt` with a progress token. Every
     * progress and message notification becomes one ExecutionEvent (and one realtime event).
     * The master token is decrypted here and never leaves this function.
     */
    async executePrompt(executionId: string): Promise<PromptOutcome> {
      const ctx = Context.current();
      const attempt = ctx.info.attempt;
      const em = orm.em.fork() as EntityManager;
      const execution = await em.findOne(Execution, executionId, { populate: ['agent', 'agent.server', 'agent.server.masterTokenCiphertext'] });
      if (!execution || !execution.agent) throw ApplicationFailure.nonRetryable('the execution or its agent no longer exists', 'ExecutionFailed');
      if (isFinal(execution.status)) return { success: execution.status === ExecutionStatus.COMPLETED, error: execution.error };
      const agent = execution.agent;
      const server = agent.server;
      if (attempt > execution.attempt) {
        execution.attempt = attempt;
        execution.output = undefined;
        await em.flush();
      }
      const log = new ExecutionLog(orm, { id: execution.id, organizationId: execution.organization.id, agentId: agent.id, taskId: execution.task?.id }, attempt);
      if (attempt > 1) await log.append('status', { status: ExecutionStatus.RUNNING, data: { retry: true, attempt, reason: 'the previous attempt did not finish (worker lost or timed out)' } });

      const permissions = await em.find(AgentToolPermission, { agent, canUse: true }, { populate: ['tool'] });
      let token: string;
      try {
        await assertSafeUrl(server.url, policy);
        token = openSecret(config.encryptionKeys, { keyId: server.masterTokenKeyId, ciphertext: server.masterTokenCiphertext }, masterTokenContext(server.id));
      } catch (error) {
        if (error instanceof UnsafeUrlError) throw ApplicationFailure.nonRetryable(`refused to connect: ${error.message}`, 'ExecutionFailed');
        if (error instanceof SecretDecryptionError) throw ApplicationFailure.nonRetryable(`cannot decrypt the master token: ${error.message}`, 'ExecutionFailed');
        throw error;
      }

      const state: ProgressSnapshot = { status: ExecutionStatus.RUNNING, todos: execution.todos ?? [], outputTail: '', seq: 0 };
      let output = '';
      let lastSignal = 0;
      let signalTimer: NodeJS.Timeout | undefined;
            const sendProgress = () => {
        lastSignal = Date.now();
        signalTimer = undefined;
        signalProgress({ client: temporalClient }, executionId, { ...state }).catch((error: unknown) => logger.debug({ err: error, executionId }, 'progress signal not delivered'));
      };
      const progressed = (seq: number) => {
        state.seq = Math.max(state.seq, seq);
        ctx.heartbeat({ seq: state.seq });
        const wait = PROGRESS_SIGNAL_EVERY_MS - (Date.now() - lastSignal);
        if (wait <= 0) sendProgress();
        else signalTimer ??= setTimeout(sendProgress, wait);
      };

      const onMessage = (data: Record<string, unknown>) => {
        const type = data.type;
        let written: Promise<{ seq: number }> | undefined;
        if (type === 'output' && typeof data.text === 'string') {
          output += data.text;
          state.outputTail = output.slice(-OUTPUT_TAIL);
          written = log.append('output', { output: data.text });
        } else if (type === 'todo' && Array.isArray(data.todos)) {
          state.todos = data.todos as TodoItem[];
          written = log.append('todo', { data: { todos: state.todos } });
          void em.fork().nativeUpdate(Execution, { id: executionId }, { todos: state.todos }).catch(() => undefined);
        } else if (type === 'tool_call' || type === 'tool_result') {
          written = log.append(type, { toolCall: { toolCallId: data.toolCallId as string, name: data.name as string, ...(type === 'tool_call' ? { arguments: data.arguments } : { result: data.result }) } });
        } else if (type === 'file_change') {
          written = log.append('file_change', { data: { path: data.path, change: data.change } });
        } else {
          logger.debug({ executionId, type }, 'ignored host message of unknown type');
        }
        written?.then((p) => progressed(p.seq)).catch((error: unknown) => logger.error({ err: error, executionId }, 'could not record an execution event'));
      };

      const controller = running.register(executionId);
      const cancelled = () => controller.signal.aborted;
      const onTemporalCancel = () => controller.abort(new Error('cancelled'));
      ctx.cancellationSignal.addEventListener('abort', onTemporalCancel);
      const heartbeat = setInterval(() => ctx.heartbeat({ seq: state.seq }), 1000);
      const target = { serverId: server.id, url: server.url, transport: server.transport, token };
      const timeoutMs = Math.max(1000, Math.min(ctx.info.startToCloseTimeoutMs || 30 * 60_000, 24 * 3600_000));
      try {
        const result = await mcp.withConnection(
          target,
          async (connection) => {
            connection.messageListeners.set(executionId, onMessage);
            try {
              return await connection.client.callTool(
                {
                  name: 'execute_prompt',
                  arguments: {
                    executionId,
                    agentId: agent.id,
                    agentName: agent.name,
                    prompt: execution.prompt ?? '',
                    ...(execution.context ? { context: execution.context } : {}),
                    allowedTools: permissions.map((p) => p.tool.name),
                    ...(execution.context?.responseSchema ? { responseSchema: execution.context.responseSchema } : {}),
                  },
                },
                undefined,
                {
                  signal: controller.signal,
                  timeout: timeoutMs,
                  maxTotalTimeout: timeoutMs,
                  resetTimeoutOnProgress: true,
                  onprogress: (p) => {
                    log
                      .append('progress', { progress: { progress: p.progress, total: p.total, message: p.message } })
                      .then((e) => progressed(e.seq))
                      .catch((error: unknown) => logger.error({ err: error, executionId }, 'could not record progress'));
                  },
                },
              );
            } finally {
              connection.messageListeners.delete(executionId);
            }
          },
          () => !cancelled(),
        );
        await log.flush();
        const structured = (result.structuredContent ?? {}) as { success?: boolean; output?: string; tokensUsed?: number; data?: unknown };
        const text = toolResultText(result.content);
        if (result.isError) {
          const message = /tool execute_prompt not found/i.test(text) ? 'the server does not offer execute_prompt' : `the agent reported an error: ${text || 'no details'}`;
          await em.fork().nativeUpdate(Execution, { id: executionId }, { output: output || undefined, todos: state.todos });
          throw ApplicationFailure.nonRetryable(message, 'ExecutionFailed');
        }
        const finalOutput = typeof structured.output === 'string' ? structured.output : output || text;
        await em.fork().nativeUpdate(
          Execution,
          { id: executionId },
          { output: finalOutput, tokensUsed: structured.tokensUsed ?? undefined, result: result.structuredContent ? (result.structuredContent as Record<string, unknown>) : undefined, todos: state.todos },
        );
        if (structured.success === false) return { success: false, error: `the agent reported failure${finalOutput ? `: ${finalOutput.slice(0, 500)}` : ''}`, tokensUsed: structured.tokensUsed };
        return { success: true, tokensUsed: structured.tokensUsed };
      } catch (error) {
        await log.flush().catch(() => undefined);
        if (error instanceof ApplicationFailure) throw error;
        if (cancelled()) {
          // Temporal's own cancellation, or the fast path from the cancel route: either way the
          // SDK has sent notifications/cancelled and stopped waiting for the host.
          await em.fork().nativeUpdate(Execution, { id: executionId }, { output: output || undefined, todos: state.todos });
          if (ctx.cancellationSignal.aborted) throw new CancelledFailure('cancelled');
          throw ApplicationFailure.nonRetryable('cancelled by request', 'ExecutionCancelled');
        }
        // A timed-out prompt ran for the run's limit, not for one MCP request's.
        const reason = error instanceof McpConnectionError ? error : describeMcpError(error, server.url, timeoutMs);
        throw ApplicationFailure.nonRetryable(reason.message, 'ExecutionFailed');
      } finally {
        clearInterval(heartbeat);
        clearTimeout(signalTimer);
        ctx.cancellationSignal.removeEventListener('abort', onTemporalCancel);
        running.unregister(executionId, controller);
        if (lastSignal > 0) sendProgress();
      }
    },

    /**
     * Records the final state (idempotent), frees the slot, and returns the queued executions
     * that may start now, oldest first, for the workflow to wake.
     */
    async finishExecution(executionId: string, outcome: FinishInput): Promise<string[]> {
      const em = orm.em.fork() as EntityManager;
      const execution = await em.findOne(Execution, executionId);
      if (!execution) return [];
      if (!isFinal(execution.status)) {
        const now = new Date();
        execution.status = ExecutionStatus[outcome.status];
        execution.error = outcome.error;
        execution.completedAt = now;
        execution.durationMs = execution.startedAt ? now.getTime() - execution.startedAt.getTime() : 0;
        await em.flush();
        await new ExecutionLog(orm, { id: execution.id, organizationId: execution.organization.id, agentId: execution.agent?.id ?? '', taskId: execution.task?.id }, execution.attempt).append('status', {
          status: outcome.status,
          ...(outcome.error ? { data: { error: outcome.error } } : {}),
        });
      }
      if (!execution.agent) return [];
      const agent = await em.findOne(Agent, execution.agent.id);
      if (!agent) return [];
      const runningCount = await em.count(Execution, { agent, status: ExecutionStatus.RUNNING });
      if (runningCount === 0) await setAgentStatus(em, agent.id, AgentStatus.ACTIVE, 'idle', [AgentStatus.BUSY]);
      const free = Math.max(0, agent.maxConcurrency - runningCount);
      if (free === 0) return [];
      const next = await em.find(Execution, { agent, status: ExecutionStatus.QUEUED }, { orderBy: { createdAt: 'asc', id: 'asc' }, limit: free, fields: ['id'] });
      return next.map((e) => e.id);
    },
  };
}
