import type { EntityManager } from '@mikro-orm/postgresql';
import type { TodoItem } from '../entities/execution.entity';
import { recordWebhookEvent, type WebhookEvent } from './webhooks/outbox';
import { queueNotify } from '../lib/notify-on-commit';

/**
 * One Postgres NOTIFY channel carries every live event; each API instance LISTENs and serves
 * its own sockets and SSE streams. NOTIFY payloads are limited to ~8000 bytes: an execution
 * event that would not fit travels as ids only, and listeners read it from execution_events.
 */
export const EVENTS_CHANNEL = 'fleet_events';
export const NOTIFY_LIMIT_BYTES = 7500;

/*
 * Payloads of the realtime events, as clients receive them (Socket.IO, SSE) and tests read
 * them. The Socket.IO event maps that carry them are in api/realtime/socket-events.ts.
 */

export type ExecutionPhase =
  | 'status'
  | 'output'
  | 'progress'
  | 'todo'
  | 'tool_call'
  | 'tool_result'
  | 'file_change'
  | 'input_required'
  | 'input_answered'
  | 'delegation';

/** An `input_required` event's question, or an `input_answered` event's answer (never its content). */
export type ExecutionInputEventData =
  | { inputId: string; message: string; requestedSchema: Record<string, unknown>; expiresAt: string }
  | { inputId: string; action: 'accept' | 'decline' | 'cancel'; answeredBy: string | null };

export interface AgentStatusPayload {
  agentId: string;
  status: string;
  previousStatus: string;
  reason: string | null;
  at: string;
}

export interface AgentTodoPayload {
  agentId: string;
  executionId: string;
  todos: TodoItem[];
  completed: number;
  total: number;
}

export interface AgentExecutionPayload {
  agentId: string;
  executionId: string;
  taskId?: string;
  /** On a delegated run's `status` events: the run that delegated it. */
  parentExecutionId?: string;
  seq: number;
  attempt: number;
  phase: ExecutionPhase;
  /** For `status`: the execution's new status (RUNNING, COMPLETED, ...). */
  status?: string;
  output?: string;
  toolCall?: { toolCallId?: string; name?: string; arguments?: unknown; result?: unknown };
  progress?: { progress: number; total?: number; message?: string };
  /** Anything else the host sent with the event (file changes, error text, ...). */
  data?: Record<string, unknown>;
  /** For `input_required` and `input_answered`. */
  input?: ExecutionInputEventData;
  at: string;
}

/**
 * Why a session's live feeds were closed. `token_expired` and `role_changed`: refresh (or
 * reuse the same token after a role change) and reconnect. The others: log in again.
 */
export type SessionEndReason =
  | 'logout'
  | 'refresh_reused'
  | 'user_deleted'
  | 'role_changed'
  | 'token_expired'
  | 'session_revoked'
  /** The API key the feed was opened with was revoked (`DELETE /api/api-keys/:id`). */
  | 'api_key_revoked';

/** Sent on a socket (and as the last SSE event) just before the server closes it. */
export interface SessionEndedPayload {
  reason: SessionEndReason;
}

export interface ServerStatusPayload {
  serverId: string;
  status: string;
  previousStatus: string;
  reason: string | null;
  at: string;
}

/** A run's status changed (the `status` events of its log), for the organisation-wide feed. */
export interface ExecutionStatusPayload {
  agentId: string;
  executionId: string;
  taskId?: string;
  status: string;
  attempt: number;
  error?: string;
  at: string;
}

export interface TaskOccurrencePayload {
  taskId: string;
  /** The run of this occurrence; a skipped occurrence has one too (status SKIPPED) when recorded. */
  executionId?: string;
  /** RUNNING/QUEUED (it runs), SKIPPED, FAILED (no eligible agent, ...). */
  status: string;
  trigger: string;
  scheduledFor: string | null;
  reason: string | null;
  at: string;
}

export interface ServerToolPayload {
  serverId: string;
  toolId: string;
  toolName: string;
  status: string;
  previousStatus: string | null;
  version: string | null;
  error: string | null;
  /** Only on an install's INSTALLED: the tool was already there at a version that satisfies the request, and its install command was not run. */
  alreadyInstalled?: true;
  at: string;
}

/**
 * A run asks a person something (to the agent's and the organisation's rooms): what a
 * dashboard's inbox shows. Answer with `POST /api/executions/:executionId/input`.
 */
export interface InputRequiredPayload {
  executionId: string;
  agentId: string;
  inputId: string;
  message: string;
  /** A flat JSON Schema (MCP elicitation, form mode): an object of string, number, integer, boolean or enum fields. */
  requestedSchema: Record<string, unknown>;
  expiresAt: string;
  /**
   * The question was too large for the live feed: `message` is cut and `requestedSchema` empty;
   * `GET /api/executions/:executionId` has it whole (`pendingInput`).
   */
  truncated?: true;
  at: string;
}

/*
 * The events on the channel: most are a payload above with the organisation whose rooms it
 * goes to; each API instance turns them into the payloads its clients receive.
 */

export interface ServerStatusEvent extends ServerStatusPayload {
  type: 'server:status';
  organizationId: string;
}

export interface AgentStatusEvent extends AgentStatusPayload {
  type: 'agent:status';
  organizationId: string;
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
  /** Every feed opened with this API key (revoked). */
  apiKeyId?: string;
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

export type FleetEvent =
  | ServerStatusEvent
  | AgentStatusEvent
  | ExecutionEventNotice
  | SessionEndedEvent
  | TaskOccurrenceEvent
  | ServerToolEvent
  | InputRequiredEvent;

/**
 * Serialises an event for NOTIFY. Too large: an execution event travels without its payload,
 * a question with its message cut and without its schema (both stay readable from the API).
 */
export function encodeEvent(event: FleetEvent): string {
  const text = JSON.stringify(event);
  if (Buffer.byteLength(text) <= NOTIFY_LIMIT_BYTES) return text;
  if (event.type === 'agent:input_required')
    return JSON.stringify({ ...event, message: event.message.slice(0, 1000), requestedSchema: {}, truncated: true });
  if (event.type !== 'execution:event') return text;
  const { payload: _dropped, ...idsOnly } = event;
  return JSON.stringify(idsOnly);
}

export async function publishEvent(em: EntityManager, event: FleetEvent): Promise<void> {
  await em.getConnection().execute('select pg_notify(?, ?)', [EVENTS_CHANNEL, encodeEvent(event)]);
  const alert = webhookEventOf(event);
  if (alert) await recordWebhookEvent(em, alert);
}

const link = (path: string) => `/api/${path}`;

/**
 * The webhook event an operator is told about for a fleet event, if any: failures, waits for a
 * person, servers going away. Ids, status and reason only, never prompt text, outputs,
 * questions or answers. Its id names the fact, so the same fact raised again is one message.
 */
export function webhookEventOf(event: FleetEvent): WebhookEvent | undefined {
  const at = 'at' in event ? new Date(event.at) : new Date();
  const base = { organizationId: event.organizationId, at };
  switch (event.type) {
    case 'execution:event': {
      const status = event.payload?.phase === 'status' ? event.payload.status : undefined;
      if (status !== 'FAILED' && status !== 'TIMED_OUT') return undefined;
      const type = status === 'FAILED' ? 'execution.failed' : 'execution.timed_out';
      return {
        ...base,
        id: `${type}:${event.executionId}:${event.payload!.attempt}`,
        type,
        data: {
          executionId: event.executionId,
          agentId: event.agentId,
          taskId: event.payload!.taskId ?? null,
          // A delegated run's: its parent's agent usually handles the failure, an operator may not need to.
          parentExecutionId: event.payload!.parentExecutionId ?? null,
          status,
          attempt: event.payload!.attempt,
          // Not the run's error text: a host writes it, and it may quote the prompt or the output.
          reason: status === 'FAILED' ? 'the run failed; its log has the details' : 'the run went past its timeout',
          link: link(`executions/${event.executionId}`),
        },
      };
    }
    case 'agent:input_required':
      return {
        ...base,
        id: `execution.input_required:${event.inputId}`,
        type: 'execution.input_required',
        data: {
          executionId: event.executionId,
          agentId: event.agentId,
          inputId: event.inputId,
          status: 'WAITING_INPUT',
          expiresAt: event.expiresAt,
          link: link(`executions/${event.executionId}`),
        },
      };
    case 'task:occurrence': {
      if (event.status !== 'SKIPPED' && event.status !== 'FAILED') return undefined;
      const type = event.status === 'SKIPPED' ? 'task.occurrence_skipped' : 'task.occurrence_failed';
      return {
        ...base,
        id: `${type}:${event.taskId}:${event.executionId ?? event.scheduledFor ?? event.at}`,
        type,
        data: {
          taskId: event.taskId,
          executionId: event.executionId ?? null,
          status: event.status,
          trigger: event.trigger,
          scheduledFor: event.scheduledFor,
          reason: event.reason,
          link: link(`tasks/${event.taskId}`),
        },
      };
    }
    case 'server:status': {
      if (event.status === event.previousStatus || (event.status !== 'OFFLINE' && event.status !== 'DEGRADED')) return undefined;
      const type = event.status === 'OFFLINE' ? 'server.offline' : 'server.degraded';
      return {
        ...base,
        id: `${type}:${event.serverId}:${event.at}`,
        type,
        data: {
          serverId: event.serverId,
          status: event.status,
          previousStatus: event.previousStatus,
          reason: event.reason,
          link: link(`servers/${event.serverId}`),
        },
      };
    }
    default:
      return undefined;
  }
}

/**
 * Sends the event as part of `tx`'s transaction: PostgreSQL delivers it when the transaction
 * commits, so listeners never hear of a change before it is visible, nor of one rolled back.
 */
export async function publishEventOnCommit(tx: EntityManager, event: FleetEvent): Promise<void> {
  const payload = encodeEvent(event);
  // In a transaction, sent with the others of its transaction just before it commits (lib/notify-on-commit.ts).
  if (!queueNotify(tx, EVENTS_CHANNEL, payload)) await tx.execute('select pg_notify(?, ?)', [EVENTS_CHANNEL, payload]);
  // The alert's outbox rows join the same transaction: written with the change, or not at all.
  const alert = webhookEventOf(event);
  if (alert) await recordWebhookEvent(tx, alert);
}
