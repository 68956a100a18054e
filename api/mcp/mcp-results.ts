/**
 * What every tool of the MCP endpoint shares, whoever calls it (an API key's client or a run's
 * token): answers and refusals, a tool body in its own EntityManager fork, and waiting for a run.
 */
import { ForbiddenError } from '@casl/ability';
import { RequestContext } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import type { CallToolResult, ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { Execution, FINAL_EXECUTION_STATUSES } from '../../entities';
import { AppError } from '../../domain/errors';
import { eventsAfter } from '../../domain/runs/execution-log';
import type { AppDeps } from '../deps';

export type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * A waiting `execute_prompt` or `delegate` reads the run's log when the realtime hub says the run
 * has a new event (the NOTIFY every API instance receives), and this often in any case, in case
 * a notification was lost while the LISTEN connection reconnected.
 */
const WAIT_RECHECK_MS = 2000;

/**
 * A tool's answer: the value as JSON text (what every client shows) and as structured content
 * (what programs read). A refusal is a tool error, not a JSON-RPC error, so the model sees it.
 */
export function answer(value: unknown): CallToolResult {
  return { content: [{ type: 'text', text: JSON.stringify(value) }], structuredContent: value as Record<string, unknown> };
}

export function refusal(message: string): CallToolResult {
  return { isError: true, content: [{ type: 'text', text: message }] };
}

/**
 * Runs a tool body in its own EntityManager fork (as a REST request does) and turns the
 * domain's refusals into tool errors with the REST codes: `forbidden`, `not found`, ... Anything
 * else is logged and answered generically, like the REST error handler's 500.
 */
export function guarded<A>(deps: AppDeps, tool: string, body: (args: A, em: EntityManager, extra: Extra) => Promise<unknown>) {
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
export function runResult(execution: Execution) {
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
 * notification when the client asked for them (a progressToken). The log is read again as soon
 * as the run's next event is announced (deps.events), so the answer follows the run's end by a
 * NOTIFY, not by a polling period. Stops early when the client goes away; the run goes on in
 * Temporal either way.
 */
export async function waitForRun(deps: AppDeps, executionId: string, extra: Extra): Promise<Execution> {
  const progressToken = extra._meta?.progressToken;
  let last = 0;
  let announced = false;
  let wake: () => void = () => undefined;
  const unsubscribe = deps.events.subscribe((event) => {
    if (event.type !== 'execution:event' || event.executionId !== executionId) return;
    announced = true;
    wake();
  });
  const onAbort = () => wake();
  extra.signal.addEventListener('abort', onAbort);
  try {
    for (;;) {
      announced = false;
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
      // An event announced while the log was read is read at once.
      if (announced) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, WAIT_RECHECK_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = () => undefined;
    }
  } finally {
    unsubscribe();
    extra.signal.removeEventListener('abort', onAbort);
  }
}
