import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent } from '../../../entities';
import type { AuthContext } from '../../auth/authenticate';
import { containing, scopedPage } from '../../list';
import type { z } from '../../zod';
import { presentAgent } from './agents.presenters';
import type { ListAgentsQuery } from './agents.schemas';

/** A page of the agents `auth` may read, filtered as GET /api/agents and the MCP tool `list_agents` filter. */
export function agentPage(em: EntityManager, auth: AuthContext, query: z.output<typeof ListAgentsQuery>) {
  const filters: Record<string, unknown>[] = [];
  if (query.serverId) filters.push({ server: query.serverId });
  if (query.status) filters.push({ status: query.status });
  if (query.role) filters.push({ role: query.role });
  if (query.capability) filters.push({ capabilities: { $contains: [query.capability] } });
  if (query.supervisorId) filters.push({ supervisor: query.supervisorId });
  if (query.q) filters.push({ $or: [{ name: { $ilike: containing(query.q) } }, { displayName: { $ilike: containing(query.q) } }] });
  return scopedPage(em, Agent, auth, 'Agent', query, filters, presentAgent);
}
