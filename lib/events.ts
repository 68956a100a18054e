import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * One Postgres NOTIFY channel carries every live event; each API instance LISTENs and serves
 * its own sockets and SSE streams. Payloads stay small (ids and states) to fit NOTIFY's limit.
 */
export const EVENTS_CHANNEL = 'fleet_events';

export interface ServerStatusEvent {
  type: 'server:status';
  organizationId: string;
  serverId: string;
  status: string;
  previousStatus: string;
  reason: string | null;
  at: string;
}

export type FleetEvent = ServerStatusEvent;

export async function publishEvent(em: EntityManager, event: FleetEvent): Promise<void> {
  await em.getConnection().execute('select pg_notify(?, ?)', [EVENTS_CHANNEL, JSON.stringify(event)]);
}
