/**
 * Payloads of the realtime events, shared by the server (Socket.IO, SSE) and its clients/tests.
 * Socket.IO rooms: `agent:<agentId>`, `server:<serverId>`, `task:<taskId>` and `org:<organizationId>`
 * (the organisation-wide feed a dashboard's lists follow).
 */
import type { TodoItem } from '../entities/execution.entity';

export type ExecutionPhase = 'status' | 'output' | 'progress' | 'todo' | 'tool_call' | 'tool_result' | 'file_change' | 'input_required' | 'input_answered';

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
export type SessionEndReason = 'logout' | 'refresh_reused' | 'user_deleted' | 'role_changed' | 'token_expired' | 'session_revoked';

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

export interface ServerToClientEvents {
  'session:ended': (payload: SessionEndedPayload) => void;
  'agent:status': (payload: AgentStatusPayload) => void;
  'agent:todo': (payload: AgentTodoPayload) => void;
  'agent:execution': (payload: AgentExecutionPayload) => void;
  'agent:input_required': (payload: InputRequiredPayload) => void;
  'server:status': (payload: ServerStatusPayload) => void;
  'server:tool': (payload: ServerToolPayload) => void;
  'execution:status': (payload: ExecutionStatusPayload) => void;
  'task:occurrence': (payload: TaskOccurrencePayload) => void;
}

export type SubscribeAck = { ok: true } | { error: { code: string; message: string } };

type Ack = (answer: SubscribeAck) => void;

export interface ClientToServerEvents {
  'subscribe:agent': (request: { agentId: string }, ack: Ack) => void;
  'unsubscribe:agent': (request: { agentId: string }, ack: Ack) => void;
  'subscribe:server': (request: { serverId: string }, ack: Ack) => void;
  'unsubscribe:server': (request: { serverId: string }, ack: Ack) => void;
  'subscribe:task': (request: { taskId: string }, ack: Ack) => void;
  'unsubscribe:task': (request: { taskId: string }, ack: Ack) => void;
  /** The caller's whole organisation: statuses of agents, servers, runs, task occurrences, server tools, input requests. */
  'subscribe:org': (request: Record<string, never>, ack: Ack) => void;
  'unsubscribe:org': (request: Record<string, never>, ack: Ack) => void;
}
