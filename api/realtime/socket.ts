import type http from 'node:http';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Server, type Socket } from 'socket.io';
import { Agent } from '../../entities';
import type { AgentTodoPayload, ClientToServerEvents, ServerToClientEvents, SessionEndReason, SubscribeAck } from '../../domain/realtime-types';
import { authenticateToken, sessionEndReason, type AuthContext } from '../auth/authenticate';
import type { AppDeps } from '../deps';
import type { HubEvent, RealtimeHub } from './hub';
import { atExpiry, endsSession } from './session-watch';

interface SocketData {
  auth: AuthContext;
}

type FleetSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export function agentRoom(agentId: string): string {
  return `agent:${agentId}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Tells the client why, then disconnects it (`io server disconnect`: no automatic reconnect). */
function endSocket(socket: FleetSocket, reason: SessionEndReason): void {
  if (socket.disconnected) return;
  socket.emit('session:ended', { reason });
  socket.disconnect();
}

/**
 * Socket.IO on the API's HTTP server. The access token is checked at connection (handshake
 * `auth.token`), the ability is built once per socket, and `subscribe:agent` joins a room only
 * after a CASL check on the caller's own organisation's agent.
 *
 * A socket lives only as long as its session: it is closed when a `session:ended` notice
 * concerns it (logout, refresh-token reuse, user deleted, role changed: the ability was built
 * with the old role), when its access token expires, and when a check finds the session ended
 * (at connection, before each `subscribe:agent`, after the hub's LISTEN connection comes back).
 * The hub handles notices in commit order, so no event committed after the session ended
 * reaches the socket.
 */
export function attachSocketServer(server: http.Server, deps: AppDeps & { events: RealtimeHub }): Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData> {
  const io = new Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>(server, {
    path: '/socket.io',
    serveClient: false,
    cors: { origin: false },
  });

  io.use((socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    if (typeof token !== 'string' || !token) return next(new Error('unauthorized: send the access token as auth.token'));
    authenticateToken(deps, token)
      .then((auth) => {
        socket.data.auth = auth;
        next();
      })
      .catch(() => next(new Error('unauthorized: invalid, expired or revoked access token')));
  });

  const check = async (socket: FleetSocket): Promise<SessionEndReason | undefined> => {
    const reason = await sessionEndReason(deps, socket.data.auth);
    if (reason) endSocket(socket, reason);
    return reason;
  };
  const checkLater = (socket: FleetSocket) => void check(socket).catch((error: unknown) => deps.logger.warn({ err: error }, 'could not check a socket session'));

  io.on('connection', (socket: FleetSocket) => {
    const cancelExpiry = atExpiry(socket.data.auth.tokenExpiresAt, () => endSocket(socket, 'token_expired'));
    socket.once('disconnect', cancelExpiry);
    // An end committed after the handshake's lookup but before the socket was listed here sent
    // its notice to nobody.
    checkLater(socket);

    const refuse = (ack: unknown, code: string, message: string) => {
      if (typeof ack === 'function') (ack as (a: SubscribeAck) => void)({ error: { code, message } });
    };
    socket.on('subscribe:agent', (request, ack) => {
      const agentId = request?.agentId;
      if (typeof agentId !== 'string' || !UUID.test(agentId)) return refuse(ack, 'validation_failed', 'agentId must be a uuid');
      const auth = socket.data.auth;
      const em = deps.orm.em.fork() as EntityManager;
      sessionEndReason(deps, auth)
        .then(async (ended) => {
          if (ended) {
            refuse(ack, 'session_ended', 'The session of this socket has ended; connect again with a valid access token');
            return endSocket(socket, ended);
          }
          const agent = await em.findOne(Agent, { id: agentId, organization: auth.organizationId });
          // Another organisation's agent and a missing one look the same.
          if (!agent || !auth.ability.can('read', agent)) return refuse(ack, 'not_found', 'Agent not found');
          // Closed meanwhile (its session ended): a room would hold it for nothing.
          if (socket.disconnected) return;
          await socket.join(agentRoom(agentId));
          if (typeof ack === 'function') ack({ ok: true });
        })
        .catch(() => refuse(ack, 'internal', 'Could not subscribe'));
    });
    socket.on('unsubscribe:agent', (request, ack) => {
      const agentId = request?.agentId;
      if (typeof agentId !== 'string') return refuse(ack, 'validation_failed', 'agentId must be a uuid');
      void Promise.resolve(socket.leave(agentRoom(agentId))).then(() => typeof ack === 'function' && ack({ ok: true }));
    });
  });

  const unsubscribe = deps.events.subscribe((event: HubEvent) => {
    if (event.type === 'session:ended') {
      for (const socket of io.sockets.sockets.values()) if (endsSession(event, socket.data.auth)) endSocket(socket, event.reason);
    } else if (event.type === 'hub:reconnected') {
      // Notices sent while the hub was not listening are lost: check every socket, one at a time.
      void (async () => {
        for (const socket of [...io.sockets.sockets.values()]) if (socket.connected) await check(socket).catch(() => undefined);
      })();
    } else if (event.type === 'agent:status') {
      io.to(agentRoom(event.agentId)).emit('agent:status', { agentId: event.agentId, status: event.status, previousStatus: event.previousStatus, reason: event.reason, at: event.at });
    } else if (event.type === 'execution:event') {
      const room = io.to(agentRoom(event.agentId));
      room.emit('agent:execution', event.payload);
      if (event.payload.phase === 'todo') {
        const todos = (event.payload.data?.todos ?? []) as AgentTodoPayload['todos'];
        room.emit('agent:todo', { agentId: event.agentId, executionId: event.executionId, todos, completed: todos.filter((t) => t.status === 'completed').length, total: todos.length });
      }
    }
  });
  io.engine.on('close', unsubscribe);
  server.once('close', unsubscribe);
  return io;
}
