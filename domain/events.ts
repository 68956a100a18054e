import type { EntityManager } from '@mikro-orm/postgresql';
import type { AgentExecutionPayload, InputRequiredPayload, ServerToolPayload, SessionEndReason, TaskOccurrencePayload } from './realtime-types';

/**
 * One Postgres NOTIFY channel carries every live event; each API instance LISTENs and serves
 * its own sockets and SSE streams. NOTIFY payloads are limited to ~8000 bytes: an execution
 * event that would not fit travels as ids only, and listeners read it from execution_events.
 */
export const EVENTS_CHANNEL = 'fleet_events';
export const NOTIFY_LIMIT_BYTES = 7500;

export interface ServerStatusEvent {
  type: 'server:status';
  organizationId: string;
  serverId: string;
  status: string;
  previousStatus: string;
  reason: string | null;
  at: string;
}

export interface AgentStatusEvent {
  type: 'agent:status';
  organizationId: string;
  agentId: string;
  status: string;
  previousStatus: string;
  reason: string | null;
  at: string;
}

/** One ExecutionEvent row was written; `payload` is absent when it was too large to carry. */
export interface ExecutionEventNotice {
  type: 'execution:event';
  organizationId: string;
  agentId: string;
  executionId: string;
  seq: number;
  payload?: AgentExecutionPayload;
}

/**
 * Sessions ended: every API instance closes the sockets and SSE streams they hold, because
 * those were authenticated (and their abilities built) once, when they opened.
 */
export interface SessionEndedEvent {
  type: 'session:ended';
  organizationId: string;
  /** Every session of this user (deleted, role changed). */
  userId?: string;
  /** Every session of this login (logout, refresh-token reuse). */
  familyId?: string;
  reason: SessionEndReason;
}

/**
 * A task's occurrence was decided: it runs (with its execution), or it was skipped or failed
 * before running (`reason` says why). Skipped occurrences are announced, never dropped.
 */
export interface TaskOccurrenceEvent extends TaskOccurrencePayload {
  type: 'task:occurrence';
  organizationId: string;
}

/** A catalog tool's state on a server changed (install, uninstall, drift found by a check). */
export interface ServerToolEvent extends ServerToolPayload {
  type: 'server:tool';
  organizationId: string;
}

/** A run asks a person something (domain/runs/inputs.ts `requestInput`); never carries an answer. */
export interface InputRequiredEvent extends InputRequiredPayload {
  type: 'agent:input_required';
  organizationId: string;
}

export type FleetEvent = ServerStatusEvent | AgentStatusEvent | ExecutionEventNotice | SessionEndedEvent | TaskOccurrenceEvent | ServerToolEvent | InputRequiredEvent;

/**
 * Serialises an event for NOTIFY. Too large: an execution event travels without its payload,
 * a question with its message cut and without its schema (both stay readable from the API).
 */
export function encodeEvent(event: FleetEvent): string {
  const text = JSON.stringify(event);
  if (Buffer.byteLength(text) <= NOTIFY_LIMIT_BYTES) return text;
  if (event.type === 'agent:input_required') return JSON.stringify({ ...event, message: event.message.slice(0, 1000), requestedSchema: {}, truncated: true });
  if (event.type !== 'execution:event') return text;
  const { payload: _dropped, ...idsOnly } = event;
  return JSON.stringify(idsOnly);
}

export async function publishEvent(em: EntityManager, event: FleetEvent): Promise<void> {
  await em.getConnection().execute('select pg_notify(?, ?)', [EVENTS_CHANNEL, encodeEvent(event)]);
}

/**
 * Sends the event as part of `tx`'s transaction: PostgreSQL delivers it when the transaction
 * commits, so listeners never hear of a change before it is visible, nor of one rolled back.
 */
export async function publishEventOnCommit(tx: EntityManager, event: FleetEvent): Promise<void> {
  await tx.execute('select pg_notify(?, ?)', [EVENTS_CHANNEL, encodeEvent(event)]);
}
