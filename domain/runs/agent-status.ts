import type { EntityManager } from '@mikro-orm/postgresql';
import { AgentStatus } from '../../entities/agent.entity';
import { publishEvent } from '../events';

/**
 * Moves an agent to `to` (only from one of `from` when given) and announces the change as an
 * `agent:status` event. Returns the previous status, or null when nothing changed.
 */
export async function setAgentStatus(
  em: EntityManager,
  agentId: string,
  to: AgentStatus,
  reason: string | null,
  from?: readonly AgentStatus[],
): Promise<AgentStatus | null> {
  const allowed = from ?? Object.values(AgentStatus);
  const rows = await em.getConnection().execute<{ previous: AgentStatus; organization_id: string }[]>(
    `update agents a set status = ?, updated_at = now()
     from (select id, status as previous from agents where id = ? for update) old
     where a.id = old.id and old.previous <> ? and old.previous in (${allowed.map(() => '?').join(', ')})
     returning old.previous, a.organization_id`,
    [to, agentId, to, ...allowed],
  );
  const row = rows[0];
  if (!row) return null;
  await publishEvent(em, { type: 'agent:status', organizationId: row.organization_id, agentId, status: to, previousStatus: row.previous, reason, at: new Date().toISOString() });
  return row.previous;
}
