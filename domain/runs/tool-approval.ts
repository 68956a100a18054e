import type { EntityManager } from '@mikro-orm/postgresql';
import { ExecutionInput, ExecutionInputStatus } from '../../entities';
import { markInputDelivered, requestInput } from './inputs';

/**
 * The approval gate of a direct tool call (a `kind: tool` task whose grant has
 * `requiresApproval`). The reference host asks before each command of a gated tool; a direct
 * call does not go through a host, so mcp-fleet asks itself, with the same question and form,
 * through the same input requests (domain/runs/inputs.ts): the run waits WAITING_INPUT, a
 * person answers with `POST /api/executions/:id/input`, and only `accept {approve: true}` lets
 * the call leave.
 */

/** The answer form: one boolean, the reference host's own (host/runner.ts `APPROVAL_SCHEMA`). */
export const APPROVAL_SCHEMA = {
  type: 'object',
  properties: { approve: { type: 'boolean', title: 'Approve', description: 'Run this command' } },
  required: ['approve'],
} as const;

/** Past this, the arguments in the question are cut: they are in full on the execution (`toolArguments`). */
const ARGUMENTS_SHOWN = 1000;

/** The question, worded as the host words its own ("Agent a wants to run: git --version"). */
export function toolApprovalQuestion(agentName: string, toolName: string, toolArguments: Record<string, unknown>): string {
  const args = JSON.stringify(toolArguments);
  const shown =
    args.length > ARGUMENTS_SHOWN
      ? `${args.slice(0, ARGUMENTS_SHOWN)}… (${args.length - ARGUMENTS_SHOWN} more characters: see the execution's toolArguments)`
      : args;
  return `Agent ${agentName} wants to run: ${toolName} ${shown}`;
}

export type ToolApproval =
  | { state: 'approved' }
  | { state: 'pending'; input: ExecutionInput }
  | { state: 'refused'; reason: string }
  | { state: 'expired'; input: ExecutionInput };

/**
 * Where the run's approval stands, asking it the first time. A tool run asks nothing else, so
 * its latest input request is this question: a later attempt of the activity (the answer came,
 * or a worker was lost) finds it instead of asking again. An answer is consumed here (ANSWERED
 * → DELIVERED); a DELIVERED `accept` still approves, so a retried call is not asked twice.
 */
export async function toolApproval(
  em: EntityManager,
  executionId: string,
  message: string,
  defaultTimeoutMs: number,
): Promise<ToolApproval> {
  let asked = await em.findOne(ExecutionInput, { execution: executionId }, { orderBy: { createdAt: 'desc' } });
  if (!asked) {
    const outcome = await requestInput(em, { executionId, message, requestedSchema: { ...APPROVAL_SCHEMA } }, defaultTimeoutMs);
    if (outcome.state === 'refused') return { state: 'refused', reason: `nobody can approve it: ${outcome.reason}` };
    if (outcome.state === 'pending') return { state: 'pending', input: outcome.input };
    // A concurrent attempt asked first, and it was answered already.
    asked = outcome.input;
  }
  switch (asked.status) {
    case ExecutionInputStatus.PENDING:
      return { state: 'pending', input: asked };
    case ExecutionInputStatus.EXPIRED:
      return { state: 'expired', input: asked };
    case ExecutionInputStatus.CANCELLED:
      return { state: 'refused', reason: 'not approved (the question was closed)' };
    case ExecutionInputStatus.ANSWERED:
      await markInputDelivered(em, asked.id);
      break;
    case ExecutionInputStatus.DELIVERED:
      break;
  }
  // Only an explicit yes: a decline, a cancel, a missing or false `approve` are a no, as on the host.
  if (asked.action === 'accept' && asked.content?.approve === true) return { state: 'approved' };
  return { state: 'refused', reason: `not approved (${asked.action === 'accept' ? 'approve: false' : asked.action})` };
}
