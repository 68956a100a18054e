import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EntityManager } from '@mikro-orm/postgresql';
import { McpServer, Organization, ServerTool, ServerToolStatus, ToolDefinition } from '../entities';
import type { Orm } from '../lib/orm';
import type { Account, Http } from './api';
import { waitFor } from './fleet';

/**
 * Catalog and server-tool rows for tests of the catalog, of installs and of permissions. The
 * test database is migrated but not seeded, and built-in entries are shared by every
 * organisation (and every test file), so each gets a name of its own unless it asks for one.
 */
export async function builtinTool(
  em: EntityManager,
  fields: Partial<Pick<ToolDefinition, 'name' | 'category' | 'description'>> = {},
): Promise<ToolDefinition> {
  const name = fields.name ?? `builtin-${randomUUID().slice(0, 8)}`;
  // Another test file may add the same named entry at the same moment: the first one stays.
  await em.execute(
    `insert into tool_definitions (id, created_at, updated_at, name, display_name, description, category, install_command, uninstall_command, version_command, builtin)
     values (?, now(), now(), ?, ?, ?, ?, ?, ?, ?, true)
     on conflict (name) where organization_id is null do nothing`,
    [
      randomUUID(),
      name,
      name,
      fields.description ?? null,
      fields.category ?? 'cli',
      `echo install ${name}`,
      `echo uninstall ${name}`,
      `${name} --version`,
    ],
  );
  return em.findOneOrFail(ToolDefinition, { name, organization: null });
}

/** Puts the tool's state on the server as the install workflow would leave it. */
export async function setServerTool(
  em: EntityManager,
  serverId: string,
  toolId: string,
  status = ServerToolStatus.INSTALLED,
): Promise<void> {
  const server = await em.findOneOrFail(McpServer, serverId);
  const row =
    (await em.findOne(ServerTool, { server: serverId, tool: toolId })) ??
    em.create(ServerTool, { organization: server.organization, server, tool: em.getReference(ToolDefinition, toolId) });
  row.status = status;
  row.installedVersion = status === ServerToolStatus.INSTALLED ? '1.0.0' : undefined;
  await em.flush();
}

export interface ToolCommandsSpec {
  installCommand: string;
  uninstallCommand: string;
  versionCommand: string;
  versionRegex?: string;
}

/** A catalog entry of the organisation (null: a built-in one), written straight to the database. */
export async function catalogEntry(
  orm: Orm,
  organizationId: string | null,
  commands: ToolCommandsSpec,
  options: { name?: string; category?: string } = {},
): Promise<ToolDefinition> {
  const em = orm.em.fork();
  const name = options.name ?? `probe-${randomUUID().slice(0, 8)}`;
  const tool = em.create(ToolDefinition, {
    organization: organizationId ? em.getReference(Organization, organizationId) : undefined,
    name,
    displayName: name,
    category: options.category ?? 'cli',
    builtin: !organizationId,
    installCommand: commands.installCommand,
    uninstallCommand: commands.uninstallCommand,
    versionCommand: commands.versionCommand,
    versionRegex: commands.versionRegex,
  });
  await em.flush();
  return tool;
}

const toolDirs: string[] = [];

/** Removes the temporary directories of versionFileTool (for afterAll). */
export function removeToolDirs(): void {
  for (const dir of toolDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * Harmless commands for the reference host: "installing" writes a version file in a fresh
 * temporary directory (after `delaySeconds`), the version command reads it, uninstall removes it.
 */
export function versionFileTool(version = '1.2.3', delaySeconds = 0): ToolCommandsSpec & { dir: string; file: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-tool-'));
  toolDirs.push(dir);
  const file = path.join(dir, 'version');
  const pause = delaySeconds > 0 ? `sleep ${delaySeconds} && ` : '';
  return {
    dir,
    file,
    installCommand: `${pause}echo "probe version ${version}" > ${file}`,
    uninstallCommand: `rm -f ${file}`,
    versionCommand: `cat ${file}`,
    versionRegex: String.raw`probe version (\S+)`,
  };
}

/**
 * versionFileTool whose install holds on the host until the test calls `openGate`: what a test
 * must see while an install runs (INSTALLING, a refused second request, a cancel, a kill) does not
 * depend on how fast the machine is, as a fixed delay did.
 */
export function gatedVersionFileTool(version = '1.2.3'): ReturnType<typeof versionFileTool> & { openGate(): void } {
  const spec = versionFileTool(version);
  const gate = path.join(spec.dir, 'gate');
  return {
    ...spec,
    installCommand: `until [ -e ${gate} ]; do sleep 0.05; done && ${spec.installCommand}`,
    openGate: () => writeFileSync(gate, ''),
  };
}

export interface ToolStateBody {
  status: string;
  installedVersion: string | null;
  lastError: string | null;
  logTail: string | null;
  workflowId: string | null;
  checkedAt: string | null;
  installedAt: string | null;
  tool: { id: string; name: string };
}

export async function toolState(http: Http, account: Account, serverId: string, toolId: string): Promise<ToolStateBody> {
  const res = await http.get(`/api/tools/server/${serverId}/${toolId}`).auth(account.accessToken, { type: 'bearer' });
  if (res.status !== 200) throw new Error(`tool state: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as ToolStateBody;
}

/** Waits until the tool is in one of `statuses` on the server. */
export function waitForToolState(
  http: Http,
  account: Account,
  serverId: string,
  toolId: string,
  statuses: string[],
  timeoutMs = 60_000,
): Promise<ToolStateBody> {
  return waitFor(
    async () => {
      const state = await toolState(http, account, serverId, toolId);
      return statuses.includes(state.status) ? state : undefined;
    },
    timeoutMs,
    50,
  );
}
