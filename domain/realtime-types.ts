/**
 * Payloads of the realtime events, shared by the server (Socket.IO, SSE) and its clients/tests.
 * Socket.IO rooms are per agent: `agent:<agentId>`.
 */
import type { TodoItem } from '../entities/execution.entity';

export type ExecutionPhase = 'status' | 'output' | 'progress' | 'todo' | 'tool_call' | 'tool_result' | 'file_change';

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

export interface ServerToClientEvents {
  'session:ended': (payload: SessionEndedPayload) => void;
  'agent:status': (payload: AgentStatusPayload) => void;
  'agent:todo': (payload: AgentTodoPayload) => void;
  'agent:execution': (payload: AgentExecutionPayload) => void;
}

export type SubscribeAck = { ok: true } | { error: { code: string; message: string } };

export interface ClientToServerEvents {
  'subscribe:agent': (request: { agentId: string }, ack: (answer: SubscribeAck) => void) => void;
  'unsubscribe:agent': (request: { agentId: string }, ack: (answer: SubscribeAck) => void) => void;
}
