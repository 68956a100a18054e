/**
 * The Socket.IO event maps: what the server emits, what a client may ask (with its ack), and
 * what a socket carries. The payloads are the domain's (domain/events.ts), the same the SSE
 * streams send. Rooms: `agent:<agentId>`, `server:<serverId>`, `task:<taskId>` and
 * `org:<organizationId>` (the organisation-wide feed a dashboard's lists follow).
 */
import type {
  AgentExecutionPayload,
  AgentStatusPayload,
  AgentTodoPayload,
  ExecutionStatusPayload,
  InputRequiredPayload,
  ServerStatusPayload,
  ServerToolPayload,
  SessionEndedPayload,
  TaskOccurrencePayload,
} from '../../domain/events';
import type { AuthContext } from '../auth/authenticate';

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

/** What a socket carries from its handshake: the caller, authenticated once. */
export interface SocketData {
  auth: AuthContext;
}
