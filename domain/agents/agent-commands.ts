import type { EntityManager } from '@mikro-orm/postgresql';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { Agent, AgentRole, AgentStatus, Execution, LIVE_EXECUTION_STATUSES, type McpServer, Organization, User } from '../../entities';
import type { Logger } from '../../lib/logger';
import type { AgentRetireInput } from '../../workflows/contracts/agent-retire';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError, uniqueOrConflict } from '../errors';
import { startAgentProvision, startAgentRetire, type TemporalAccess } from '../temporal';
import { trimAfterMove } from '../tools/permission-commands';
import { assertMasterUnsupervised, assertNoOtherMaster, assertValidatable, checkSupervisor } from './agent-rules';

/**
 * What changes an agent, whoever asks: a person through the API, the MASTER agent's
 * specification, later a task. Each command writes through `em` and flushes; authorisation is
 * the caller's, on the rows it loaded.
 */

export interface NewAgent {
  /** Loaded in the actor's organisation. */
  server: McpServer;
  name: string;
  displayName?: string;
  description?: string;
  role: AgentRole;
  supervisorId?: string;
  capabilities: readonly string[];
  maxConcurrency: number;
  /** The MASTER agent's run whose answer specified this agent, if one did. */
  fromExecutionId?: string;
}

export interface AgentChanges {
  displayName?: string;
  description?: string | null;
  role?: AgentRole;
  /** null: no supervisor any more. */
  supervisorId?: string | null;
  capabilities?: readonly string[];
  maxConcurrency?: number;
}

function nameTaken(input: NewAgent): AppError {
  return input.fromExecutionId
    ? AppError.conflict('name_taken', `This server already has an agent named ${input.name}`, { executionId: input.fromExecutionId })
    : AppError.conflict('name_taken', 'This server already has an agent with that name');
}

/** Capabilities are a set: the first occurrence keeps its place. */
function capabilitySet(capabilities: readonly string[]): string[] {
  return [...new Set(capabilities)];
}

/** Defines an agent on a server; it starts PENDING_VALIDATION. */
export async function createAgent(em: EntityManager, actor: Actor, input: NewAgent): Promise<Agent> {
  const { server } = input;
  assertMasterUnsupervised(input.role, Boolean(input.supervisorId));
  if (input.role === AgentRole.MASTER) await assertNoOtherMaster(em, server.id);
  const supervisor = input.supervisorId
    ? await checkSupervisor(em, actor.organizationId, undefined, server.id, input.supervisorId)
    : undefined;
  if (await em.count(Agent, { server, name: input.name })) throw nameTaken(input);
  const agent = em.create(Agent, {
    organization: em.getReference(Organization, actor.organizationId),
    server,
    name: input.name,
    displayName: input.displayName ?? input.name,
    description: input.description,
    role: input.role,
    supervisor,
    capabilities: capabilitySet(input.capabilities),
    maxConcurrency: input.maxConcurrency,
    createdBy: actor.userId ? em.getReference(User, actor.userId) : undefined,
  });
  const origin = input.fromExecutionId ? { via: 'master', executionId: input.fromExecutionId } : { serverId: server.id };
  audit(em, actor, {
    action: 'agent.create',
    resourceType: 'agent',
    resourceId: agent.id,
    changes: { name: agent.name, role: agent.role, ...origin, supervisorId: supervisor?.id ?? null },
  });
  await uniqueOrConflict(
    () => em.flush(),
    () => nameTaken(input),
  );
  return agent;
}

/**
 * Changes an agent: never its status (validate and execute own it) nor its server. Audited
 * with what actually changed. A move under another supervisor trims the agent's tool
 * permissions, and its subtree's, to the new supervisor's (audited). Run it in a transaction:
 * the move and the trim commit together, and a caller that must check its permission on the
 * result checks before the commit.
 */
export async function updateAgent(em: EntityManager, actor: Actor, agent: Agent, input: AgentChanges): Promise<Agent> {
  const changes: Record<string, unknown> = {};
  const note = (key: string, from: unknown, to: unknown) => {
    if (JSON.stringify(from) !== JSON.stringify(to)) changes[key] = { from, to };
  };
  if (input.displayName !== undefined) note('displayName', agent.displayName, (agent.displayName = input.displayName));
  if (input.description !== undefined)
    note('description', agent.description ?? null, (agent.description = input.description ?? undefined) ?? null);
  if (input.capabilities !== undefined) note('capabilities', agent.capabilities, (agent.capabilities = capabilitySet(input.capabilities)));
  if (input.maxConcurrency !== undefined) note('maxConcurrency', agent.maxConcurrency, (agent.maxConcurrency = input.maxConcurrency));
  const role = input.role ?? agent.role;
  if (role === AgentRole.MASTER && agent.role !== AgentRole.MASTER) await assertNoOtherMaster(em, agent.server.id, agent.id);
  note('role', agent.role, (agent.role = role));
  if (input.supervisorId !== undefined) {
    const supervisor = input.supervisorId
      ? await checkSupervisor(em, actor.organizationId, agent.id, agent.server.id, input.supervisorId)
      : undefined;
    note('supervisorId', agent.supervisor?.id ?? null, supervisor?.id ?? null);
    agent.supervisor = supervisor;
  }
  assertMasterUnsupervised(agent.role, Boolean(agent.supervisor));
  if (Object.keys(changes).length) audit(em, actor, { action: 'agent.update', resourceType: 'agent', resourceId: agent.id, changes });
  await em.flush();
  // Under a new supervisor, the agent and its subtree keep only what that supervisor holds.
  if (changes.supervisorId && agent.supervisor) await trimAfterMove(em, actor, agent);
  return agent;
}

/**
 * Whether the agent's server may hold it: validated once, or a validation ran (provision_agent
 * may have succeeded before activate_agent was refused). Only an agent never sent to its server
 * has nothing there to retire.
 */
function mayBeOnServer(agent: Agent): boolean {
  return Boolean(agent.validatedAt) || agent.status !== AgentStatus.PENDING_VALIDATION || Boolean(agent.lastError);
}

/**
 * Removes an agent that runs nothing; its subordinates move up to its own supervisor. Runs in
 * the caller's transaction (`tx`), so the check and the removal see the same rows. Returns what
 * `retireFromServer` needs once the transaction has committed, when the server may hold the agent.
 */
export async function deleteAgent(tx: EntityManager, actor: Actor, agent: Agent): Promise<AgentRetireInput | undefined> {
  const active = await tx.count(Execution, { agent, status: { $in: [...LIVE_EXECUTION_STATUSES] } });
  if (active > 0)
    throw AppError.conflict('agent_busy', `The agent has ${active} queued, running or waiting execution(s); cancel them first`, {
      executions: active,
    });
  const newSupervisor = agent.supervisor?.id ?? null;
  const moved = await tx.nativeUpdate(Agent, { supervisor: agent.id }, { supervisor: newSupervisor });
  // Subordinates this unit of work already holds still point at the agent in memory, and the
  // removal would set them null on flush: read them again as the update left them.
  const held = tx
    .getUnitOfWork()
    .getIdentityMap()
    .values()
    .filter((row): row is Agent => row instanceof Agent && row.supervisor?.id === agent.id);
  if (held.length) await tx.find(Agent, { id: { $in: held.map((row) => row.id) } }, { refresh: true });
  audit(tx, actor, {
    action: 'agent.delete',
    resourceType: 'agent',
    resourceId: agent.id,
    changes: { name: agent.name, subordinatesMovedTo: newSupervisor, subordinates: moved },
  });
  tx.remove(agent);
  await tx.flush();
  if (!mayBeOnServer(agent)) return undefined;
  return { agentId: agent.id, agentName: agent.name, serverId: agent.server.id, organizationId: actor.organizationId };
}

/**
 * Starts the `agentRetire` workflow for an agent deleted (and committed) just now: its server's
 * deactivate_agent with removeWorkspace, retried while the server is unreachable. The deletion
 * stands whatever happens here, so a failure to start is logged, not thrown.
 */
export async function retireFromServer(deps: { temporal: TemporalAccess; logger: Logger }, retire: AgentRetireInput): Promise<void> {
  try {
    await startAgentRetire(deps.temporal, retire);
  } catch (error) {
    deps.logger.error(
      { err: error, agentId: retire.agentId, serverId: retire.serverId },
      'could not start agentRetire: the agent stays on its server',
    );
  }
}

/**
 * Starts the validation of an agent (the `agentProvision` workflow: the server's
 * provision_agent then activate_agent) and returns its handle; the agent becomes ACTIVE only
 * if both succeed. One validation of an agent runs at a time.
 */
export async function startValidation(em: EntityManager, temporal: TemporalAccess, actor: Actor, agent: Agent) {
  // The workflow records who validated; only a person does.
  if (!actor.userId) throw new TypeError('an agent is validated by a user');
  assertValidatable(agent);
  audit(em, actor, { action: 'agent.validate', resourceType: 'agent', resourceId: agent.id });
  await em.flush();
  try {
    return await startAgentProvision(temporal, {
      agentId: agent.id,
      organizationId: actor.organizationId,
      serverId: agent.server.id,
      validatedBy: actor.userId,
    });
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError)
      throw AppError.conflict('validation_running', 'A validation of this agent is already running');
    throw error;
  }
}
