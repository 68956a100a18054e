import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, AgentToolPermission, Organization, ToolDefinition, User } from '../../entities';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { fieldError } from '../errors';
import { sameScope, scopeExcess, trimScope, type CommandScope } from './permission-rules';
import { inCatalogOf } from './catalog-commands';
import { PLATFORM_TOOL_CODE, platformToolProblem } from './reserved-names';

/**
 * An agent's tool permissions, and the rule that binds them to its supervisor's: a
 * subordinate never holds a tool, or a command of one, that its supervisor lacks. Checked when
 * permissions are set; kept when a supervisor loses something (its subtree loses it too) and
 * when an agent moves under another supervisor (it and its subtree are trimmed to the new
 * one). A MASTER, and any agent without a supervisor, is bounded only by what its server has.
 *
 * Every change of one server's tree takes the same advisory lock (the tree never leaves its
 * server), so a grant to a subordinate and a loss of its supervisor never cross.
 */

export interface PermissionGrant {
  toolId: string;
  canUse: boolean;
  allowedCommands?: readonly string[];
  blockedCommands?: readonly string[];
  /** The host asks a person before each command of the tool (absent: false). */
  requiresApproval?: boolean;
}

/** A subordinate whose permissions a change above it narrowed. */
export interface TrimmedAgent {
  agentId: string;
  name: string;
  /** Tools it lost (by name). */
  removed: string[];
  /** Tools it keeps with fewer commands. */
  narrowed: { tool: string; from: CommandScope; to: CommandScope }[];
  /** Tools it keeps that now ask for approval before each command, as its supervisor's do. */
  approvalRequired: string[];
}

type TrimCause = 'supervisor_permissions_changed' | 'moved';

interface ScopeRow {
  toolId: string;
  tool: string;
  scope: CommandScope;
  requiresApproval: boolean;
}

/** Serialises the permission changes of one server's agents until the transaction ends. */
async function lockServerTree(tx: EntityManager, serverId: string): Promise<void> {
  await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`tool-permissions:${serverId}`]);
}

const scopeOf = (p: AgentToolPermission): CommandScope => ({
  allowedCommands: [...p.allowedCommands],
  blockedCommands: [...p.blockedCommands],
});
const shown = (p: { canUse: boolean; requiresApproval: boolean } & CommandScope) => ({
  canUse: p.canUse,
  allowedCommands: [...p.allowedCommands],
  blockedCommands: [...p.blockedCommands],
  ...(p.requiresApproval ? { requiresApproval: true } : {}),
});
const scopeRow = (p: AgentToolPermission, scope = scopeOf(p)): ScopeRow => ({
  toolId: p.tool.id,
  tool: p.tool.name,
  scope,
  requiresApproval: p.requiresApproval,
});

/** What an agent holds with `canUse`, by tool id. */
async function heldBy(tx: EntityManager, agentId: string): Promise<Map<string, ScopeRow>> {
  const rows = await tx.find(AgentToolPermission, { agent: agentId, canUse: true }, { populate: ['tool'] });
  return new Map(rows.map((p) => [p.tool.id, scopeRow(p)]));
}

function boundedBySupervisor(agent: Agent): boolean {
  return Boolean(agent.supervisor) && agent.role !== AgentRole.MASTER;
}

/**
 * Replaces the agent's whole set of permissions with `grants` (in the caller's transaction),
 * audited with the difference; then trims its subtree to what it now holds. A grant beyond
 * the supervisor's is a 400 naming the tool (`body.permissions.<i>.toolId`) or the command
 * (`.allowedCommands` / `.blockedCommands`).
 */
export async function setAgentPermissions(
  tx: EntityManager,
  actor: Actor,
  agent: Agent,
  grants: readonly PermissionGrant[],
): Promise<{ permissions: AgentToolPermission[]; trimmed: TrimmedAgent[] }> {
  await lockServerTree(tx, agent.server.id);
  // Read again under the lock: a move that committed meanwhile changed whom the agent answers to.
  await tx.findOneOrFail(Agent, agent.id, { refresh: true });
  const ids = grants.map((g) => g.toolId);
  const tools = new Map(
    (ids.length ? await tx.find(ToolDefinition, { id: { $in: ids }, ...inCatalogOf(actor.organizationId) }) : []).map((t) => [t.id, t]),
  );
  grants.forEach((g, i) => {
    const tool = tools.get(g.toolId);
    if (!tool) throw fieldError(`body.permissions.${i}.toolId`, 'no such tool in your catalog', 'not_found');
    // An entry named before the names were reserved may exist; it is never granted (a `canUse: false` entry grants nothing).
    const reserved = g.canUse ? platformToolProblem(tool.name, 'granted to an agent') : undefined;
    if (reserved) throw fieldError(`body.permissions.${i}.toolId`, reserved, PLATFORM_TOOL_CODE);
  });

  if (boundedBySupervisor(agent)) {
    const supervisor = await tx.findOneOrFail(Agent, agent.supervisor!.id);
    const theirs = await heldBy(tx, supervisor.id);
    grants.forEach((g, i) => {
      if (!g.canUse) return;
      const tool = tools.get(g.toolId)!.name;
      const bound = theirs.get(g.toolId);
      if (!bound)
        throw fieldError(
          `body.permissions.${i}.toolId`,
          `the supervisor ${supervisor.name} does not hold the tool ${tool}`,
          'not_held_by_supervisor',
        );
      const excess = scopeExcess(tool, { allowedCommands: g.allowedCommands ?? [], blockedCommands: g.blockedCommands ?? [] }, bound.scope);
      if (excess) throw fieldError(`body.permissions.${i}.${excess.field}`, excess.message, 'beyond_supervisor');
      // An approval gate binds the subtree: a subordinate would otherwise be the way around it.
      if (bound.requiresApproval && !g.requiresApproval) {
        throw fieldError(
          `body.permissions.${i}.requiresApproval`,
          `the supervisor ${supervisor.name} asks for approval before each command of ${tool}: this agent must too`,
          'beyond_supervisor',
        );
      }
    });
  }

  const current = new Map((await tx.find(AgentToolPermission, { agent }, { populate: ['tool'] })).map((p) => [p.tool.id, p]));
  const grantedBy = actor.userId ? tx.getReference(User, actor.userId) : undefined;
  const diff: { tool: string; from: ReturnType<typeof shown> | null; to: ReturnType<typeof shown> | null }[] = [];
  const permissions: AgentToolPermission[] = [];
  for (const g of grants) {
    const next = {
      canUse: g.canUse,
      allowedCommands: [...(g.allowedCommands ?? [])],
      blockedCommands: [...(g.blockedCommands ?? [])],
      requiresApproval: g.requiresApproval ?? false,
    };
    const row = current.get(g.toolId);
    current.delete(g.toolId);
    if (row && row.canUse === next.canUse && row.requiresApproval === next.requiresApproval && sameScope(row, next)) {
      permissions.push(row);
      continue;
    }
    diff.push({ tool: tools.get(g.toolId)!.name, from: row ? shown(row) : null, to: shown(next) });
    if (row) {
      tx.assign(row, { ...next, grantedBy });
      permissions.push(row);
    } else {
      permissions.push(
        tx.create(AgentToolPermission, {
          organization: tx.getReference(Organization, actor.organizationId),
          agent,
          tool: tools.get(g.toolId)!,
          ...next,
          grantedBy,
        }),
      );
    }
  }
  for (const row of current.values()) {
    diff.push({ tool: row.tool.name, from: shown(row), to: null });
    tx.remove(row);
  }
  if (diff.length)
    audit(tx, actor, { action: 'agent.permissions.set', resourceType: 'agent', resourceId: agent.id, changes: { permissions: diff } });
  await tx.flush();

  const held = new Map(permissions.filter((p) => p.canUse).map((p) => [p.tool.id, scopeRow(p)]));
  const trimmed = await trimSubtree(tx, actor, agent, { [agent.id]: held }, false, 'supervisor_permissions_changed');
  return { permissions, trimmed };
}

/**
 * After `agent` moved under another supervisor (its new supervisor already flushed, in the
 * caller's transaction): trims it and its subtree to what the new supervisor holds, audited.
 */
export async function trimAfterMove(tx: EntityManager, actor: Actor, agent: Agent): Promise<TrimmedAgent[]> {
  if (!boundedBySupervisor(agent)) return [];
  await lockServerTree(tx, agent.server.id);
  const supervisorId = agent.supervisor!.id;
  return trimSubtree(tx, actor, agent, { [supervisorId]: await heldBy(tx, supervisorId) }, true, 'moved');
}

/** The agents under `rootId` (and itself), parents before their subordinates; at most 100 levels. */
async function subtreeOf(
  tx: EntityManager,
  organizationId: string,
  rootId: string,
): Promise<{ id: string; supervisor_id: string; name: string; depth: number }[]> {
  return tx.execute(
    `with recursive tree as (
       select id, supervisor_id, name, 0 as depth from agents where id = ? and organization_id = ?
       union all select a.id, a.supervisor_id, a.name, t.depth + 1
       from agents a join tree t on a.supervisor_id = t.id where t.depth < 100 and a.organization_id = ?
     ) select * from tree order by depth`,
    [rootId, organizationId, organizationId],
  );
}

/**
 * Trims every agent of the subtree under `root` (and `root` itself when `includeRoot`) to its
 * supervisor's permissions, top down, so each level is trimmed against the level above as it
 * ends up. `bounds` holds the permissions of the supervisor the walk starts from.
 */
async function trimSubtree(
  tx: EntityManager,
  actor: Actor,
  root: Agent,
  bounds: Record<string, Map<string, ScopeRow>>,
  includeRoot: boolean,
  cause: TrimCause,
): Promise<TrimmedAgent[]> {
  const nodes = (await subtreeOf(tx, actor.organizationId, root.id)).filter((n) => includeRoot || n.depth > 0);
  if (!nodes.length) return [];
  const rows = await tx.find(AgentToolPermission, { agent: { $in: nodes.map((n) => n.id) }, canUse: true }, { populate: ['tool'] });
  const byAgent = new Map<string, AgentToolPermission[]>();
  for (const row of rows) byAgent.set(row.agent.id, [...(byAgent.get(row.agent.id) ?? []), row]);
  const held = new Map(Object.entries(bounds));
  const trimmed: TrimmedAgent[] = [];
  for (const node of nodes) {
    const bound = held.get(node.supervisor_id) ?? new Map<string, ScopeRow>();
    const change: TrimmedAgent = { agentId: node.id, name: node.name, removed: [], narrowed: [], approvalRequired: [] };
    const kept = new Map<string, ScopeRow>();
    for (const row of byAgent.get(node.id) ?? []) {
      const theirs = bound.get(row.tool.id);
      const scope = theirs && trimScope(row.tool.name, scopeOf(row), theirs.scope);
      if (!scope) {
        change.removed.push(row.tool.name);
        tx.remove(row);
        continue;
      }
      if (!sameScope(scope, row)) {
        change.narrowed.push({ tool: row.tool.name, from: scopeOf(row), to: scope });
        tx.assign(row, { allowedCommands: [...scope.allowedCommands], blockedCommands: [...scope.blockedCommands] });
      }
      if (theirs.requiresApproval && !row.requiresApproval) {
        change.approvalRequired.push(row.tool.name);
        row.requiresApproval = true;
      }
      kept.set(row.tool.id, scopeRow(row, scope));
    }
    held.set(node.id, kept);
    if (change.removed.length || change.narrowed.length || change.approvalRequired.length) {
      trimmed.push(change);
      audit(tx, actor, {
        action: 'agent.permissions.trimmed',
        resourceType: 'agent',
        resourceId: node.id,
        changes: {
          cause,
          supervisorId: node.supervisor_id,
          ...(cause === 'supervisor_permissions_changed' ? { changedAgentId: root.id } : {}),
          removed: change.removed,
          narrowed: change.narrowed,
          approvalRequired: change.approvalRequired,
        },
      });
    }
  }
  await tx.flush();
  return trimmed;
}
