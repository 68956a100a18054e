import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Organization, ToolDefinition } from '../entities';
import type { Orm } from '../lib/orm';
import type { Account, Http } from './api';
import { waitFor } from './fleet';

export interface ToolCommandsSpec {
  installCommand: string;
  uninstallCommand: string;
  versionCommand: string;
  versionRegex?: string;
}

/** A catalog entry of the organisation (null: a built-in one), written straight to the database. */
export async function catalogEntry(orm: Orm, organizationId: string | null, commands: ToolCommandsSpec, options: { name?: string; category?: string } = {}): Promise<ToolDefinition> {
  const em = orm.em.fork() as EntityManager;
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

/**
 * Harmless commands for the reference host: "installing" writes a version file in a fresh
 * temporary directory (after `delaySeconds`), the version command reads it, uninstall removes it.
 */
export function versionFileTool(version = '1.2.3', delaySeconds = 0): ToolCommandsSpec & { dir: string; file: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-tool-'));
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
export function waitForToolState(http: Http, account: Account, serverId: string, toolId: string, statuses: string[], timeoutMs = 30_000): Promise<ToolStateBody> {
  return waitFor(
    async () => {
      const state = await toolState(http, account, serverId, toolId);
      return statuses.includes(state.status) ? state : undefined;
    },
    timeoutMs,
    50,
  );
}
