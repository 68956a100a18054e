/**
 * Agents' workspaces: one directory per agent under the host's workspace root, created at
 * provision_agent (or at a run, for an agent provisioned before the host restarted) and kept
 * between runs, so what an agent leaves there is there for its next prompt.
 *
 * Beside each workspace (not in it) is the agent's global git configuration, the file its
 * commands' GIT_CONFIG_GLOBAL names (runner.ts agentEnvironment). The host checks it at every
 * run and before every command, and writes it afresh when it changed, so nothing an agent
 * writes there (`git config --global`, any program that writes files) configures a later git.
 */
import { randomUUID } from 'node:crypto';
import { lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Sandbox } from './sandbox';

/**
 * The directory of `agentId` under `root`. The id comes from the wire: it is encoded so that
 * no id ('..', 'a/b') names a directory outside the root or another agent's.
 */
export function workspacePath(root: string, agentId: string): string {
  const name = encodeURIComponent(agentId).replace(/\./g, '%2E');
  return path.join(path.resolve(root), name || '%00');
}

/** The agent's global git configuration: `<workspace>.gitconfig`, never a workspace (an encoded id holds no `.`). */
export function gitConfigPath(workspace: string): string {
  return `${workspace}.gitconfig`;
}

const GIT_CONFIG = `# The global git configuration of this agent's commands (GIT_CONFIG_GLOBAL), written by the
# mcp-fleet agent host before each command: nothing written here lasts. The settings that keep
# a repository's own configuration from starting programs are in the commands' environment.
`;

/** Whether `file` is already the configuration the host writes: a read-only regular file with its text. */
async function isFresh(file: string): Promise<boolean> {
  try {
    const stats = await lstat(file);
    return stats.isFile() && (stats.mode & 0o777) === 0o444 && (await readFile(file, 'utf8')) === GIT_CONFIG;
  } catch {
    return false;
  }
}

/**
 * Writes the agent's global git configuration afresh (whatever is there, a file or a
 * directory, goes). The file is replaced in one rename, never missing: a command of another
 * run of the same agent may be starting, and its sandbox mounts this file.
 *
 * A file that is already what the host writes stays as it is. In a sandbox, where the file is
 * mounted read-only, that is every time after the first: replacing it while another command's
 * bwrap mounts it makes that bwrap fail ("Unable to find ... (deleted) in mount table", exit 1).
 */
export async function resetGitConfig(workspace: string): Promise<void> {
  const file = gitConfigPath(workspace);
  if (await isFresh(file)) return;
  const fresh = `${file}.${randomUUID()}`;
  await writeFile(fresh, GIT_CONFIG, { mode: 0o444 });
  try {
    await rename(fresh, file).catch(async (error: NodeJS.ErrnoException) => {
      // A directory in its place (an unsandboxed agent can make one): removed, then replaced.
      if (error.code !== 'EISDIR' && error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error;
      await rm(file, { recursive: true, force: true });
      await rename(fresh, file);
    });
  } finally {
    await rm(fresh, { force: true });
  }
}

/** The agent's workspace, made (for the sandbox's user, when commands run in one) if it is not there. */
export async function ensureWorkspace(root: string, agentId: string, sandbox?: Pick<Sandbox, 'prepareWorkspace'>): Promise<string> {
  const dir = workspacePath(root, agentId);
  await mkdir(dir, { recursive: true });
  await sandbox?.prepareWorkspace(path.resolve(root), dir);
  await resetGitConfig(dir);
  return dir;
}

export async function removeWorkspace(root: string, agentId: string): Promise<void> {
  const dir = workspacePath(root, agentId);
  await rm(dir, { recursive: true, force: true });
  await rm(gitConfigPath(dir), { recursive: true, force: true });
}
