/**
 * Fast path for cancellation. The durable path is Temporal cancellation, which reaches a
 * running activity on its next heartbeat; a NOTIFY on this channel reaches every worker at once,
 * and the one running the execution aborts its MCP call immediately (the SDK then sends
 * notifications/cancelled to the host). Answers to a run's question use it too (inputs.ts).
 */
export const CONTROL_CHANNEL = 'fleet_control';

/** A cancel on the control channel (cancel.ts publishes it, worker/cancel-listener.ts acts on it). */
export interface CancelCommand {
  type: 'cancel';
  executionId: string;
}
