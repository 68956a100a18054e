import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, AgentStatus } from '../../entities';

/** An agent's place in the supervision tree, with everyone under it. */
export interface AgentTreeNode {
  id: string;
  name: string;
  displayName: string;
  role: AgentRole;
  status: AgentStatus;
  children: AgentTreeNode[];
}

/**
 * Whether `agentId` is `fromId` or stands above it in its chain of supervisors. Bounded, so a
 * loop already in the data (written outside the API) cannot make the walk endless.
 */
export async function supervisorChainIncludes(em: EntityManager, fromId: string, agentId: string): Promise<boolean> {
  const rows = await em.getConnection().execute<{ id: string }[]>(
    `with recursive chain(id, supervisor_id, depth) as (
       select id, supervisor_id, 0 from agents where id = ?
       union all select a.id, a.supervisor_id, c.depth + 1 from agents a join chain c on a.id = c.supervisor_id where c.depth < 1000
     ) select id from chain where id = ?`,
    [fromId, agentId],
  );
  return rows.length > 0;
}

/** The subtree under `rootId` (at most 100 levels deep), children in name order; undefined when no such agent. */
export async function agentHierarchy(em: EntityManager, organizationId: string, rootId: string): Promise<AgentTreeNode | undefined> {
  const rows = await em
    .getConnection()
    .execute<{ id: string; supervisor_id: string | null; name: string; display_name: string; role: AgentRole; status: AgentStatus }[]>(
      `with recursive tree as (
       select id, supervisor_id, name, display_name, role, status, 0 as depth from agents where id = ? and organization_id = ?
       union all select a.id, a.supervisor_id, a.name, a.display_name, a.role, a.status, t.depth + 1
       from agents a join tree t on a.supervisor_id = t.id where t.depth < 100 and a.organization_id = ?
     ) select * from tree order by depth, name`,
      [rootId, organizationId, organizationId],
    );
  const nodes = new Map<string, AgentTreeNode>();
  for (const r of rows)
    nodes.set(r.id, { id: r.id, name: r.name, displayName: r.display_name, role: r.role, status: r.status, children: [] });
  for (const r of rows) if (r.id !== rootId && r.supervisor_id) nodes.get(r.supervisor_id)?.children.push(nodes.get(r.id)!);
  return nodes.get(rootId);
}

/** An agent's supervisor and its direct subordinates (in name order), read side by side. */
export async function supervisionOf(em: EntityManager, agent: Agent): Promise<{ supervisor: Agent | null; subordinates: Agent[] }> {
  const [supervisor, subordinates] = await Promise.all([
    agent.supervisor ? em.fork().findOne(Agent, agent.supervisor.id) : null,
    em.fork().find(Agent, { supervisor: agent.id, organization: agent.organization.id }, { orderBy: { name: 'asc' } }),
  ]);
  return { supervisor, subordinates };
}
