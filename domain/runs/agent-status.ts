import type { EntityManager } from '@mikro-orm/postgresql';
import { AgentStatus } from '../../entities/agent.entity';
import { publishEventOnCommit, type AgentStatusEvent } from '../events';

/** The one builder of the `agent:status` event. */
export function agentStatusEvent(change: {
  organizationId: string;
  agentId: string;
  status: AgentStatus;
  previousStatus: AgentStatus;
  reason: string | null;
}): AgentStatusEvent {
  return { type: 'agent:status', ...change, at: new Date().toISOString() };
}

/**
 * Moves an agent to `to` (only from one of `from` when given) and announces the change as an
 * `agent:status` event. Returns the previous status, or null when nothing changed.
 *
 * Runs on `em`: inside a transaction (the run lifecycle takes a slot in one) the change commits
 * with the rest and PostgreSQL delivers the event at commit; on a plain fork both happen at once.
 */
export async function setAgentStatus(
  em: EntityManager,
  agentId: string,
  to: AgentStatus,
  reason: string | null,
  from?: readonly AgentStatus[],
): Promise<AgentStatus | null> {
  const allowed = from ?? Object.values(AgentStatus);
  const rows = await em.execute<{ previous: AgentStatus; organization_id: string }[]>(
    `update agents a set status = ?, updated_at = now()
     from (select id, status as previous from agents where id = ? for no key update) old
     where a.id = old.id and old.previous <> ? and old.previous in (${allowed.map(() => '?').join(', ')})
     returning old.previous, a.organization_id`,
    [to, agentId, to, ...allowed],
  );
  const row = rows[0];
  if (!row) return null;
  await publishEventOnCommit(
    em,
    agentStatusEvent({ organizationId: row.organization_id, agentId, status: to, previousStatus: row.previous, reason }),
  );
  return row.previous;
}
