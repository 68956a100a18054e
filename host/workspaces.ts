/**
 * Agents' workspaces: one directory per agent under the host's workspace root, created at
 * provision_agent (or at a run, for an agent provisioned before the host restarted) and kept
 * between runs, so what an agent leaves there is there for its next prompt.
 */
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * The directory of `agentId` under `root`. The id comes from the wire: it is encoded so that
 * no id ('..', 'a/b') names a directory outside the root or another agent's.
 */
export function workspacePath(root: string, agentId: string): string {
  const name = encodeURIComponent(agentId).replace(/\./g, '%2E');
  return path.join(path.resolve(root), name || '%00');
}

export async function ensureWorkspace(root: string, agentId: string): Promise<string> {
  const dir = workspacePath(root, agentId);
  await mkdir(dir, { recursive: true });
  return dir;
}

export async function removeWorkspace(root: string, agentId: string): Promise<void> {
  await rm(workspacePath(root, agentId), { recursive: true, force: true });
}
