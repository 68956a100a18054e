import type http from 'node:http';
import { subject } from '@casl/ability';
import { Server, type Socket } from 'socket.io';
import { Agent, McpServer, Task } from '../../entities';
import type { AgentTodoPayload, SessionEndReason } from '../../domain/events';
import { authenticateToken, sessionEndReason } from '../auth/authenticate';
import { ApiKeyRejected } from '../auth/api-key-auth';
import type { AppDeps } from '../deps';
import type { HubEvent, RealtimeHub } from './hub';
import { atExpiry, endsSession } from './session-watch';
import type { ClientToServerEvents, ServerToClientEvents, SocketData, SubscribeAck } from './socket-events';

type FleetSocket = Socket<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>;

export function agentRoom(agentId: string): string {
  return `agent:${agentId}`;
}

const room = {
  agent: agentRoom,
  server: (serverId: string) => `server:${serverId}`,
  task: (taskId: string) => `task:${taskId}`,
  org: (organizationId: string) => `org:${organizationId}`,
};

/** What a socket may subscribe to: the entity behind each room, read-checked with CASL in the caller's organisation. */
const SUBSCRIPTIONS = {
  agent: { entity: Agent, idField: 'agentId', label: 'Agent' },
  server: { entity: McpServer, idField: 'serverId', label: 'Server' },
  // A deleted task keeps its row (its runs' history stays readable) but has no live feed.
  task: { entity: Task, idField: 'taskId', label: 'Task', where: { deletedAt: null } },
} as const;

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
export function attachSocketServer(
  server: http.Server,
  deps: AppDeps & { events: RealtimeHub },
): Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData> {
  const io = new Server<ClientToServerEvents, ServerToClientEvents, Record<string, never>, SocketData>(server, {
    path: '/socket.io',
    serveClient: false,
    cors: { origin: false },
  });

  io.use((socket, next) => {
    // `auth.token`, or `Authorization: Bearer` for clients (scripts with an API key) that set headers.
    const token =
      (socket.handshake.auth as { token?: unknown } | undefined)?.token ??
      /^Bearer (\S+)$/.exec(socket.handshake.headers.authorization ?? '')?.[1];
    if (typeof token !== 'string' || !token) return next(new Error('unauthorized: send the access token or API key as auth.token'));
    authenticateToken(deps, token)
      .then((auth) => {
        socket.data.auth = auth;
        next();
      })
      .catch((error: unknown) =>
        next(
          new Error(
            error instanceof ApiKeyRejected ? `unauthorized: ${error.code}` : 'unauthorized: invalid, expired or revoked access token',
          ),
        ),
      );
  });

  const check = async (socket: FleetSocket): Promise<SessionEndReason | undefined> => {
    const reason = await sessionEndReason(deps, socket.data.auth);
    if (reason) endSocket(socket, reason);
    return reason;
  };
  const checkLater = (socket: FleetSocket) =>
    void check(socket).catch((error: unknown) => deps.logger.warn({ err: error }, 'could not check a socket session'));

  io.on('connection', (socket: FleetSocket) => {
    deps.metrics.realtimeConnections.inc({ kind: 'socket' });
    socket.once('disconnect', () => deps.metrics.realtimeConnections.dec({ kind: 'socket' }));
    const cancelExpiry = atExpiry(socket.data.auth.tokenExpiresAt, () => endSocket(socket, 'token_expired'));
    socket.once('disconnect', cancelExpiry);
    // An end committed after the handshake's lookup but before the socket was listed here sent
    // its notice to nobody.
    checkLater(socket);

    const refuse = (ack: unknown, code: string, message: string) => {
      if (typeof ack === 'function') (ack as (a: SubscribeAck) => void)({ error: { code, message } });
    };
    /** Joins `name` once the session is still alive and `allowed()` says the caller may read what it carries. */
    const join = (ack: unknown, name: string, allowed: () => Promise<boolean>, notFound: string) => {
      const auth = socket.data.auth;
      sessionEndReason(deps, auth)
        .then(async (ended) => {
          if (ended) {
            refuse(ack, 'session_ended', 'The session of this socket has ended; connect again with a valid access token');
            return endSocket(socket, ended);
          }
          // Another organisation's resource and a missing one look the same.
          if (!(await allowed())) return refuse(ack, 'not_found', notFound);
          // Closed meanwhile (its session ended): a room would hold it for nothing.
          if (socket.disconnected) return;
          await socket.join(name);
          if (typeof ack === 'function') (ack as (a: SubscribeAck) => void)({ ok: true });
        })
        .catch(() => refuse(ack, 'internal', 'Could not subscribe'));
    };
    const leave = (ack: unknown, name: string) =>
      void Promise.resolve(socket.leave(name)).then(() => typeof ack === 'function' && (ack as (a: SubscribeAck) => void)({ ok: true }));

    for (const [kind, { entity, idField, label, ...rest }] of Object.entries(SUBSCRIPTIONS) as [
      keyof typeof SUBSCRIPTIONS,
      (typeof SUBSCRIPTIONS)[keyof typeof SUBSCRIPTIONS],
    ][]) {
      socket.on(`subscribe:${kind}`, (request: Record<string, unknown> | undefined, ack: unknown) => {
        const id = request?.[idField];
        if (typeof id !== 'string' || !UUID.test(id)) return refuse(ack, 'validation_failed', `${idField} must be a uuid`);
        const auth = socket.data.auth;
        join(
          ack,
          room[kind](id),
          async () => {
            const found = await deps.orm.em
              .fork()
              .findOne(entity as typeof Agent, { id, organization: auth.organizationId, ...('where' in rest ? rest.where : {}) });
            return !!found && auth.ability.can('read', found);
          },
          `${label} not found`,
        );
      });
      socket.on(`unsubscribe:${kind}`, (request: Record<string, unknown> | undefined, ack: unknown) => {
        const id = request?.[idField];
        if (typeof id !== 'string') return refuse(ack, 'validation_failed', `${idField} must be a uuid`);
        leave(ack, room[kind](id));
      });
    }
    socket.on('subscribe:org', (_request, ack) => {
      const auth = socket.data.auth;
      // Every member reads the organisation's servers, agents, tasks and runs (VIEWER included).
      join(
        ack,
        room.org(auth.organizationId),
        async () => auth.ability.can('read', subject('Agent', { organization: { id: auth.organizationId } } as unknown as Agent)),
        'Organisation not found',
      );
    });
    socket.on('unsubscribe:org', (_request, ack) => leave(ack, room.org(socket.data.auth.organizationId)));
  });

  const unsubscribe = deps.events.subscribe((event: HubEvent) => {
    if (event.type === 'session:ended') {
      for (const socket of io.sockets.sockets.values()) if (endsSession(event, socket.data.auth)) endSocket(socket, event.reason);
    } else if (event.type === 'hub:reconnected') {
      // Notices sent while the hub was not listening are lost: check every socket, one at a time.
      void (async () => {
        for (const socket of [...io.sockets.sockets.values()]) if (socket.connected) await check(socket).catch(() => undefined);
      })();
    } else if (
      event.type === 'agent:status' ||
      event.type === 'server:status' ||
      event.type === 'server:tool' ||
      event.type === 'task:occurrence' ||
      event.type === 'agent:input_required'
    ) {
      // Status events go to the room of what they are about and to the organisation's room.
      const { type, organizationId, ...payload } = event;
      const about =
        'agentId' in event ? room.agent(event.agentId) : 'taskId' in event ? room.task(event.taskId) : room.server(event.serverId);
      (io.to([about, room.org(organizationId)]).emit as (name: string, body: unknown) => boolean)(type, payload);
    } else if (event.type === 'execution:event') {
      const { payload } = event;
      // A task's run is followed from its agent's room and from its task's room alike.
      const rooms = payload.taskId ? [room.agent(event.agentId), room.task(payload.taskId)] : [room.agent(event.agentId)];
      io.to(rooms).emit('agent:execution', payload);
      if (payload.phase === 'todo') {
        const todos = (payload.data?.todos ?? []) as AgentTodoPayload['todos'];
        io.to(rooms).emit('agent:todo', {
          agentId: event.agentId,
          executionId: event.executionId,
          todos,
          completed: todos.filter((t) => t.status === 'completed').length,
          total: todos.length,
        });
      }
      if (payload.phase === 'status' && payload.status) {
        const error = typeof payload.data?.error === 'string' ? payload.data.error : undefined;
        io.to(room.org(event.organizationId)).emit('execution:status', {
          agentId: event.agentId,
          executionId: event.executionId,
          ...(payload.taskId ? { taskId: payload.taskId } : {}),
          status: payload.status,
          attempt: payload.attempt,
          ...(error ? { error } : {}),
          at: payload.at,
        });
      }
    }
  });
  io.engine.on('close', unsubscribe);
  server.once('close', unsubscribe);
  return io;
}
