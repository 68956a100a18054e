import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { AgentToolPermission, Organization, ServerTool, ServerToolStatus, ToolDefinition } from '../../entities';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError, fieldError, uniqueOrConflict } from '../errors';
import { PLATFORM_TOOL_CODE, platformToolProblem } from './reserved-names';

/**
 * The tool catalog an organisation sees: the built-in entries (seeded, no organisation,
 * read-only) and its own, which its ADMINs add, change and remove (every entry carries
 * commands that hosts run as their own user: api/auth/abilities.ts).
 */

/** The catalog entries `organizationId` sees, as a MikroORM filter. */
export function inCatalogOf(organizationId: string) {
  return { $or: [{ organization: null }, { organization: organizationId }] };
}

export interface ToolFields {
  name: string;
  displayName?: string;
  description?: string | null;
  category: string;
  installCommand: string;
  uninstallCommand: string;
  versionCommand: string;
  versionRegex?: string | null;
  homepage?: string | null;
}

export type ToolChanges = Partial<ToolFields>;

/** ServerTool states in which a tool is on a server, or on its way in or out. */
const IN_USE_ON_SERVERS = [ServerToolStatus.INSTALLING, ServerToolStatus.INSTALLED, ServerToolStatus.REMOVING];

export function isBuiltin(tool: ToolDefinition): boolean {
  return !tool.organization;
}

/** Built-in entries belong to every organisation at once: nobody edits them through the API. */
function assertEditable(tool: ToolDefinition): void {
  if (isBuiltin(tool))
    throw new AppError(
      403,
      'builtin_read_only',
      `${tool.name} is a built-in catalog entry and is read-only; add an entry of your organisation's own instead`,
    );
}

const nameTaken = (name: string) => AppError.conflict('name_taken', `The catalog already has a tool named ${name}`);

/** An organisation's entry may not take the name of another of its entries, nor of a built-in one (hosts tell tools apart by name). */
async function assertNameFree(em: EntityManager, organizationId: string, name: string, exceptId?: string): Promise<void> {
  const clash = await em.count(ToolDefinition, { name, ...inCatalogOf(organizationId), ...(exceptId ? { id: { $ne: exceptId } } : {}) });
  if (clash) throw nameTaken(name);
}

/** The host contract's tool names are the platform's own (domain/tools/reserved-names.ts). */
function assertNotPlatformTool(name: string): void {
  const problem = platformToolProblem(name, 'the name of a catalog entry');
  if (problem) throw fieldError('body.name', problem, PLATFORM_TOOL_CODE);
}

/** The commands of an entry, as audited: they run on every server the entry is installed on. */
function commandsOf(tool: Pick<ToolFields, 'installCommand' | 'uninstallCommand' | 'versionCommand' | 'versionRegex'>) {
  return {
    installCommand: tool.installCommand,
    uninstallCommand: tool.uninstallCommand,
    versionCommand: tool.versionCommand,
    versionRegex: tool.versionRegex ?? null,
  };
}

/** Adds an entry to the actor's organisation's catalog, audited with its commands. */
export async function createTool(em: EntityManager, actor: Actor, input: ToolFields): Promise<ToolDefinition> {
  assertNotPlatformTool(input.name);
  await assertNameFree(em, actor.organizationId, input.name);
  const tool = em.create(ToolDefinition, {
    organization: em.getReference(Organization, actor.organizationId),
    builtin: false,
    name: input.name,
    displayName: input.displayName ?? input.name,
    description: input.description ?? undefined,
    category: input.category,
    installCommand: input.installCommand,
    uninstallCommand: input.uninstallCommand,
    versionCommand: input.versionCommand,
    versionRegex: input.versionRegex ?? undefined,
    homepage: input.homepage ?? undefined,
  });
  audit(em, actor, {
    action: 'tool.create',
    resourceType: 'tool',
    resourceId: tool.id,
    changes: { name: tool.name, category: tool.category, ...commandsOf(tool) },
  });
  await uniqueOrConflict(
    () => em.flush(),
    () => nameTaken(input.name),
  );
  return tool;
}

/** Changes an organisation's entry, audited with what actually changed (commands included: they run on servers). */
export async function updateTool(em: EntityManager, actor: Actor, tool: ToolDefinition, input: ToolChanges): Promise<ToolDefinition> {
  assertEditable(tool);
  if (input.name !== undefined && input.name !== tool.name) {
    assertNotPlatformTool(input.name);
    await assertNameFree(em, actor.organizationId, input.name, tool.id);
  }
  const changes: Record<string, { from: unknown; to: unknown }> = {};
  for (const key of Object.keys(input) as (keyof ToolFields)[]) {
    const to = input[key];
    if (to === undefined) continue;
    const from = tool[key] ?? null;
    if (from === to) continue;
    changes[key] = { from, to };
    Object.assign(tool, { [key]: to ?? undefined });
  }
  if (Object.keys(changes).length) audit(em, actor, { action: 'tool.update', resourceType: 'tool', resourceId: tool.id, changes });
  await uniqueOrConflict(
    () => em.flush(),
    () => nameTaken(input.name ?? tool.name),
  );
  return tool;
}

/**
 * Removes an organisation's entry that nothing uses (in the caller's transaction): 409
 * `tool_in_use` naming the servers it is on (installing, installed or being removed) and the
 * agents granted it. Its other server rows (never installed, failed) go with it.
 */
export async function deleteTool(tx: EntityManager, actor: Actor, tool: ToolDefinition): Promise<void> {
  assertEditable(tool);
  // Holds off new grants and installs of it (their foreign keys wait on this lock) until the end.
  await tx.findOneOrFail(ToolDefinition, tool.id, { lockMode: LockMode.PESSIMISTIC_WRITE });
  const [onServers, grants] = await Promise.all([
    tx.find(ServerTool, { tool, status: { $in: IN_USE_ON_SERVERS } }, { populate: ['server'], orderBy: { createdAt: 'asc' }, limit: 20 }),
    tx.find(AgentToolPermission, { tool, canUse: true }, { populate: ['agent'], orderBy: { createdAt: 'asc' }, limit: 20 }),
  ]);
  if (onServers.length || grants.length) {
    const servers = onServers.map((st) => ({ serverId: st.server.id, name: st.server.name, status: st.status }));
    const agents = grants.map((p) => ({ agentId: p.agent.id, name: p.agent.name }));
    const uses = [
      servers.length ? `on ${servers.length}${servers.length === 20 ? '+' : ''} server(s) (uninstall it first)` : '',
      agents.length ? `granted to ${agents.length}${agents.length === 20 ? '+' : ''} agent(s) (revoke it first)` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    throw AppError.conflict('tool_in_use', `${tool.name} is in use: ${uses}`, { servers, agents });
  }
  await tx.nativeDelete(ServerTool, { tool });
  audit(tx, actor, { action: 'tool.delete', resourceType: 'tool', resourceId: tool.id, changes: { name: tool.name, ...commandsOf(tool) } });
  tx.remove(tool);
  await tx.flush();
}
