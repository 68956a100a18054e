import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, AgentStatus } from '../../entities';
import { isRunnable } from '../runs/slots';
import { AppError, fieldError } from '../errors';
import { supervisorChainIncludes } from './agent-queries';

/**
 * The rules of the supervision tree and of the MASTER role. Commands call them; each throws
 * the error the caller answers with.
 */

/**
 * A supervisor must be an agent of the same organisation and server, and never the agent
 * itself nor one of its descendants (`agentId` is absent for an agent not created yet).
 */
export async function checkSupervisor(
  em: EntityManager,
  organizationId: string,
  agentId: string | undefined,
  serverId: string,
  supervisorId: string,
): Promise<Agent> {
  const supervisor = await em.findOne(Agent, { id: supervisorId, organization: organizationId });
  if (!supervisor) throw fieldError('body.supervisorId', 'no such agent in your organisation', 'not_found');
  if (supervisor.server.id !== serverId) throw fieldError('body.supervisorId', 'the supervisor must be on the same server', 'other_server');
  // Walking up from the new supervisor, meeting the agent itself would close a loop.
  if (agentId && (await supervisorChainIncludes(em, supervisorId, agentId))) {
    throw AppError.conflict('supervisor_cycle', 'That supervisor is the agent itself or one of its subordinates');
  }
  return supervisor;
}

/** One MASTER per server: refuses when the server has one other than `exceptAgentId`. */
export async function assertNoOtherMaster(em: EntityManager, serverId: string, exceptAgentId?: string): Promise<void> {
  const others = await em.count(Agent, {
    server: serverId,
    role: AgentRole.MASTER,
    ...(exceptAgentId ? { id: { $ne: exceptAgentId } } : {}),
  });
  if (others > 0) throw AppError.conflict('master_exists', 'This server already has a MASTER agent');
}

/** A MASTER is the top of its server's tree. */
export function assertMasterUnsupervised(role: AgentRole, hasSupervisor: boolean): void {
  if (role === AgentRole.MASTER && hasSupervisor) throw fieldError('body.supervisorId', 'a MASTER agent has no supervisor');
}

/** The server's MASTER agent, which must be able to run a prompt. */
export async function runnableMasterOf(em: EntityManager, serverId: string): Promise<Agent> {
  const master = await em.findOne(Agent, { server: serverId, role: AgentRole.MASTER });
  if (!master) throw AppError.conflict('no_master', 'This server has no MASTER agent');
  if (!isRunnable(master.status)) throw AppError.conflict('agent_not_active', `The server's MASTER agent is ${master.status}`);
  return master;
}

/** Only an agent waiting for its first validation, or switched off, is validated again. */
export function assertValidatable(agent: Agent): void {
  if (agent.status !== AgentStatus.PENDING_VALIDATION && agent.status !== AgentStatus.INACTIVE) {
    throw AppError.conflict('not_pending', `The agent is ${agent.status}; only PENDING_VALIDATION or INACTIVE agents are validated`);
  }
}

/**
 * The one definition of "X is a direct subordinate of Y": supervised by Y, in Y's organisation.
 * Delegation (domain/runs/delegation.ts, api/mcp/mcp-run-tools.ts) decides by it; the link it
 * reads is made only through checkSupervisor (above), which the master agent's create-agent
 * uses too: an agent the MASTER creates is its direct subordinate, one its runs may delegate to.
 */
export function isDirectSubordinate(
  agent: { organization: { id: string }; supervisor?: { id: string } | null },
  supervisor: { id: string; organization: { id: string } },
): boolean {
  return agent.organization.id === supervisor.organization.id && agent.supervisor?.id === supervisor.id;
}

/** The direct subordinates of `supervisor` (any status), by name. */
export function directSubordinatesOf(em: EntityManager, supervisor: { id: string; organization: { id: string } }): Promise<Agent[]> {
  return em.find(Agent, { organization: supervisor.organization.id, supervisor: supervisor.id }, { orderBy: { name: 'asc', id: 'asc' } });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The agents of the organisation that `idOrName` names: its id, or every agent of that name. */
function named(idOrName: string): { id: string } | { name: string } {
  return UUID.test(idOrName) ? { id: idOrName } : { name: idOrName };
}

/**
 * The direct subordinate of `supervisor` among `found`, the organisation's agents `idOrName`
 * names: 404 when there are none (another organisation's agents do not exist here), 403
 * `not_subordinate` when none is a direct subordinate, 409 `ambiguous_name` when several
 * subordinates share the name.
 */
function pickSubordinate(found: Agent[], supervisor: { id: string; name: string; organization: { id: string } }, idOrName: string): Agent {
  if (found.length === 0) throw AppError.notFound('Agent');
  const subordinates = found.filter((agent) => isDirectSubordinate(agent, supervisor));
  if (subordinates.length === 0)
    throw new AppError(
      403,
      'not_subordinate',
      `${idOrName} is not a direct subordinate of ${supervisor.name}: an agent delegates only to its own subordinates`,
    );
  if (subordinates.length > 1) throw AppError.conflict('ambiguous_name', `Several subordinates are named ${idOrName}: use the id`);
  return subordinates[0]!;
}

/**
 * The direct subordinate of a supervisor known by its id (a run's agent) named by `idOrName`,
 * read in the same query as the supervisor: 404 when the supervisor is gone, else
 * pickSubordinate's answer.
 */
export async function supervisorAndSubordinate(
  em: EntityManager,
  supervisorRef: { id: string; organizationId: string },
  idOrName: string,
): Promise<{ supervisor: Agent; agent: Agent }> {
  const wanted = named(idOrName);
  const found = await em.find(Agent, { organization: supervisorRef.organizationId, $or: [{ id: supervisorRef.id }, wanted] });
  const supervisor = found.find((agent) => agent.id === supervisorRef.id);
  if (!supervisor) throw AppError.notFound('Agent');
  const candidates = found.filter((agent) => ('id' in wanted ? agent.id === wanted.id : agent.name === wanted.name));
  return { supervisor, agent: pickSubordinate(candidates, supervisor, idOrName) };
}
