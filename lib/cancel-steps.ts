import diagnostics from 'node:diagnostics_channel';

/** One step of a run's cancel in this process, published on CANCEL_STEPS_CHANNEL. */
export interface CancelStep {
  step: 'cancel published' | 'fast path abort' | 'temporal cancel delivered' | 'tasks/cancel sent' | 'tasks/cancel answered';
  executionId?: string;
  mcpTaskId?: string;
  /** `Date.now()` when it happened. */
  at: number;
}

/**
 * Where a cancel is in the API (its NOTIFY) and in the worker, for whoever subscribes (the tasks benchmark's per-step
 * breakdown). A `node:diagnostics_channel`: with no subscriber, publishing costs a check.
 */
export const CANCEL_STEPS_CHANNEL = diagnostics.channel('mcp-fleet:cancel-steps');

export function publishCancelStep(step: Omit<CancelStep, 'at'>): void {
  if (CANCEL_STEPS_CHANNEL.hasSubscribers) CANCEL_STEPS_CHANNEL.publish({ ...step, at: Date.now() } satisfies CancelStep);
}
