/**
 * The subscribers of the fan-out benchmark (bench/fanout.bench.ts), in a process of their own
 * so that their parsing does not run on the API instances' event loop: real socket.io-client
 * connections, spread round-robin over the instances, each in its organisation's room. Driven
 * over IPC: `connect` → `connected`, `report` → every receipt (time of arrival per event key and
 * socket), then it closes the sockets and exits.
 */
import { io as connectSocket, type Socket } from 'socket.io-client';
import type { AgentStatusPayload } from '../domain/events';
import type { ClientToServerEvents, ServerToClientEvents } from '../api/realtime/socket-events';

export type ClientsRequest =
  { type: 'connect'; urls: string[]; token: string; count: number; prefix: string } | { type: 'count' } | { type: 'report' };

export type ClientsAnswer =
  | { type: 'connected'; ms: number }
  | { type: 'failed'; error: string }
  /** Receipts so far, over every socket. */
  | { type: 'count'; received: number }
  /** `receipts[socket]` maps an event key (its `reason`) to the times it arrived on that socket. */
  | { type: 'report'; receipts: Record<string, number[]>[] };

type FleetClient = Socket<ServerToClientEvents, ClientToServerEvents>;

const CONNECT_AT_ONCE = 25;
const at = () => performance.timeOrigin + performance.now();
const send = (answer: ClientsAnswer) => process.send!(answer);

const sockets: FleetClient[] = [];
const receipts: Record<string, number[]>[] = [];
let received = 0;

async function connectOne(url: string, token: string, prefix: string): Promise<void> {
  const socket: FleetClient = connectSocket(url, {
    auth: { token },
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
  });
  const mine: Record<string, number[]> = {};
  sockets.push(socket);
  receipts.push(mine);
  socket.on('agent:status', (event: AgentStatusPayload) => {
    if (!event.reason?.startsWith(prefix)) return;
    (mine[event.reason] ??= []).push(at());
    received++;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  const ack = await new Promise<unknown>((resolve) => socket.emit('subscribe:org', {}, resolve));
  if (!(ack as { ok?: boolean }).ok) throw new Error(`subscribe:org refused: ${JSON.stringify(ack)}`);
}

async function connectAll(urls: string[], token: string, count: number, prefix: string): Promise<void> {
  let next = 0;
  // A few at a time: each connection authenticates (a session lookup) and subscribes (another).
  await Promise.all(
    Array.from({ length: CONNECT_AT_ONCE }, async () => {
      for (let i = next++; i < count; i = next++) await connectOne(urls[i % urls.length]!, token, prefix);
    }),
  );
}

process.on('message', (request: ClientsRequest) => {
  if (request.type === 'connect') {
    const began = at();
    connectAll(request.urls, request.token, request.count, request.prefix).then(
      () => send({ type: 'connected', ms: at() - began }),
      (error: unknown) => send({ type: 'failed', error: error instanceof Error ? error.message : String(error) }),
    );
  } else if (request.type === 'count') {
    send({ type: 'count', received });
  } else {
    // A large message: close and go only once it has left.
    process.send!({ type: 'report', receipts } satisfies ClientsAnswer, () => {
      sockets.forEach((s) => s.close());
      process.disconnect();
    });
  }
});
