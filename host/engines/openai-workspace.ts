/**
 * The files the model may read and write: only inside the agent's workspace. A path is taken
 * relative to the workspace; an absolute path, a `..` segment, or a symbolic link that leads out
 * (the file itself or any directory on the way) is refused before anything is read or written.
 */
import { constants } from 'node:fs';
import { chown, lstat, mkdir, open, realpath, stat } from 'node:fs/promises';
import path from 'node:path';

/** A path the model may not use, with why; the tool answers the model with it. */
export class WorkspacePathError extends Error {
  override readonly name = 'WorkspacePathError';
}

/** Files larger than this are read in part: the rest would not fit in a model's context anyway. */
export const READ_LIMIT_BYTES = 256 * 1024;

function inside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === '' || (!relative.startsWith(`..${path.sep}`) && relative !== '..' && !path.isAbsolute(relative));
}

async function exists(target: string): Promise<boolean> {
  try {
    await lstat(target);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/**
 * The absolute path of `given` in `workspace`, refused when it could lead out of it. Symbolic
 * links inside the workspace that stay inside are followed; the deepest part that exists is
 * resolved, so a linked directory on the way counts.
 */
export async function resolveInWorkspace(workspace: string, given: string): Promise<{ target: string; root: string }> {
  if (typeof given !== 'string' || given.trim() === '') throw new WorkspacePathError('a path is required');
  if (given.includes('\0')) throw new WorkspacePathError('the path holds a NUL character');
  if (path.isAbsolute(given) || /^[A-Za-z]:[\\/]/.test(given))
    throw new WorkspacePathError(`"${given}" is absolute: give a path relative to the workspace`);
  if (given.split(/[\\/]+/).includes('..')) throw new WorkspacePathError(`"${given}" goes up with "..": give a path inside the workspace`);
  const root = await realpath(workspace);
  const target = path.join(root, given);
  // The deepest existing ancestor (or the file itself) tells where the path really leads.
  let existing = target;
  while (!(await exists(existing))) existing = path.dirname(existing);
  const real = await realpath(existing).catch((error: NodeJS.ErrnoException) => {
    // A link to nowhere: where it points is unknown, so it is not followed.
    if (error.code === 'ENOENT') throw new WorkspacePathError(`"${given}" is a symbolic link to a file that does not exist`);
    throw error;
  });
  if (!inside(root, real)) throw new WorkspacePathError(`"${given}" leads out of the workspace (through a symbolic link)`);
  return { target: path.join(real, path.relative(existing, target)), root };
}

/** The file's text (its first READ_LIMIT_BYTES), and whether it was cut. */
export async function readWorkspaceFile(workspace: string, given: string): Promise<{ content: string; truncated: boolean; size: number }> {
  const { target } = await resolveInWorkspace(workspace, given);
  const handle = await open(target, constants.O_RDONLY | constants.O_NOFOLLOW).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') throw new WorkspacePathError(`"${given}" does not exist`);
    if (error.code === 'EISDIR') throw new WorkspacePathError(`"${given}" is a directory`);
    throw error;
  });
  try {
    const stats = await handle.stat();
    if (stats.isDirectory()) throw new WorkspacePathError(`"${given}" is a directory`);
    const buffer = Buffer.alloc(Math.min(stats.size, READ_LIMIT_BYTES));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return { content: buffer.subarray(0, bytesRead).toString('utf8'), truncated: stats.size > bytesRead, size: stats.size };
  } finally {
    await handle.close();
  }
}

/**
 * Who the files the host writes for the agent belong to: the workspace's owner (the sandbox's
 * user, when a root host sandboxes commands), so the agent's own commands can change them.
 */
async function ownerFor(root: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { uid, gid } = await stat(root);
  return uid === 0 ? undefined : { uid, gid };
}

/** Writes the file (its directories created as needed); says whether it was created or replaced. */
export async function writeWorkspaceFile(
  workspace: string,
  given: string,
  content: string,
): Promise<{ change: 'created' | 'modified'; path: string; bytes: number }> {
  const { target, root } = await resolveInWorkspace(workspace, given);
  if (target === root) throw new WorkspacePathError(`"${given}" is the workspace itself, not a file`);
  const existed = await exists(target);
  const owner = await ownerFor(root);
  const firstMade = await mkdir(path.dirname(target), { recursive: true });
  if (owner && firstMade) {
    for (let dir = path.dirname(target); inside(firstMade, dir); dir = path.dirname(dir)) await chown(dir, owner.uid, owner.gid);
  }
  // O_NOFOLLOW: a link put in place after the check above is not written through.
  const handle = await open(target, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644).catch(
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'EISDIR') throw new WorkspacePathError(`"${given}" is a directory`);
      if (error.code === 'ELOOP') throw new WorkspacePathError(`"${given}" is a symbolic link`);
      throw error;
    },
  );
  try {
    if (owner) await handle.chown(owner.uid, owner.gid);
    const bytes = Buffer.from(content, 'utf8');
    await handle.writeFile(bytes);
    return { change: existed ? 'modified' : 'created', path: path.relative(root, target).split(path.sep).join('/'), bytes: bytes.length };
  } finally {
    await handle.close();
  }
}
