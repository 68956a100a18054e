import { Execution, ExecutionInputStatus } from '../entities';
import { cancelOpenInputs, expireInput, findInput } from '../domain/runs/inputs';
import { cancelMcpTask } from '../lib/mcp-tasks';
import type { ActivityDeps } from './deps';
import { serverGateway } from './server-gateway';

/** tasks/cancel is best effort: a host that does not answer does not hold the run's end. */
const CANCEL_TIMEOUT_MS = 5000;

/** The workflow's side of a run waiting for an answer (no executePrompt runs meanwhile). */
export function createInputActivities(deps: ActivityDeps) {
  const { orm } = deps;
  const gateway = serverGateway(deps);
  return {
    /** The question's status now: the workflow's re-check in case the answer's signal was lost. */
    async inputStatus(inputId: string): Promise<ExecutionInputStatus | null> {
      return (await findInput(orm.em, inputId))?.status ?? null;
    },

    /** The input timeout passed: expired, unless an answer won the race (then the run goes on). */
    async expireRunInput(inputId: string): Promise<{ expired: boolean }> {
      const outcome = await expireInput(orm.em.fork(), inputId);
      return { expired: outcome.expired || outcome.input?.status === ExecutionInputStatus.EXPIRED };
    },

    /**
     * A run that stopped waiting for good (cancelled, timed out): its task is cancelled on the
     * host, best effort, and its open question closed. Plain calls have nothing to cancel here.
     */
    async cancelRemoteTask(executionId: string): Promise<boolean> {
      const em = orm.em.fork();
      await cancelOpenInputs(em, executionId);
      const execution = await em.findOne(Execution, executionId, { populate: ['agent', 'agent.server'] });
      const taskId = execution?.mcpTaskId;
      const server = execution?.agent?.server;
      if (!taskId || !server) return false;
      return gateway
        .withServer(server, ({ connection }) => cancelMcpTask(connection.client, taskId, CANCEL_TIMEOUT_MS), { canRetry: () => false })
        .catch(() => false);
    },
  };
}
