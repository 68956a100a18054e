import type { ExecutionInput } from '../../../entities';

/** The question a run waits on, as a person answering it sees it (never an answer's content). */
export function presentPendingInput(input: ExecutionInput) {
  return { inputId: input.id, message: input.message, requestedSchema: input.requestedSchema, expiresAt: input.expiresAt.toISOString(), createdAt: input.createdAt.toISOString() };
}
