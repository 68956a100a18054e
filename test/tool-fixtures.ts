import { randomUUID } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { McpServer, ServerTool, ServerToolStatus, ToolDefinition } from '../entities';

/**
 * Catalog and server-tool rows for tests of the catalog and of permissions. The test database
 * is migrated but not seeded, and built-in entries are shared by every organisation (and
 * every test file), so each gets a name of its own unless it asks for one.
 */
export async function builtinTool(em: EntityManager, fields: Partial<Pick<ToolDefinition, 'name' | 'category' | 'description'>> = {}): Promise<ToolDefinition> {
  const name = fields.name ?? `builtin-${randomUUID().slice(0, 8)}`;
  // Another test file may add the same named entry at the same moment: the first one stays.
  await em.execute(
    `insert into tool_definitions (id, created_at, updated_at, name, display_name, description, category, install_command, uninstall_command, version_command, builtin)
     values (?, now(), now(), ?, ?, ?, ?, ?, ?, ?, true)
     on conflict (name) where organization_id is null do nothing`,
    [randomUUID(), name, name, fields.description ?? null, fields.category ?? 'cli', `echo install ${name}`, `echo uninstall ${name}`, `${name} --version`],
  );
  return em.findOneOrFail(ToolDefinition, { name, organization: null });
}

/** Puts the tool's state on the server as the install workflow would leave it. */
export async function setServerTool(em: EntityManager, serverId: string, toolId: string, status = ServerToolStatus.INSTALLED): Promise<void> {
  const server = await em.findOneOrFail(McpServer, serverId);
  const row = (await em.findOne(ServerTool, { server: serverId, tool: toolId })) ?? em.create(ServerTool, { organization: server.organization, server, tool: em.getReference(ToolDefinition, toolId) });
  row.status = status;
  row.installedVersion = status === ServerToolStatus.INSTALLED ? '1.0.0' : undefined;
  await em.flush();
}
