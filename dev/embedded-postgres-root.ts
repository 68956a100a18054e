import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../lib/logger';

const execFileAsync = promisify(execFile);

/**
 * Where and as whom embedded PostgreSQL runs (dev/embedded-postgres.ts starts it).
 * PostgreSQL refuses to run as root, so as root it runs as the `postgres` system user. That
 * user cannot enter a mode-700 directory (root's home, any `mktemp -d` folder), which is where
 * a checkout, its node_modules and its data dir often are. Rather than open up the user's
 * directories, we then run the binaries from a root-owned copy and keep the data in a
 * postgres-owned directory, both under a runtime root (see `runtimeDir`), and leave a symlink
 * at the data dir's usual place.
 */

/** Where root keeps the copy of the binaries and the data the postgres user could not reach. */
export const DEFAULT_RUNTIME_DIR = '/var/lib/mcp-fleet';

/** How a user picks another runtime root; the callers (dev, tests, scripts) read it. */
export const RUNTIME_DIR_VARIABLE = 'EMBEDDED_POSTGRES_RUNTIME_DIR';

export interface RunAs {
  uid?: number;
  gid?: number;
}

const WHAT_TO_DO =
  `Set ${RUNTIME_DIR_VARIABLE} to a directory that root can write and the postgres user can traverse, ` +
  'run as a non-root user, or set DATABASE_URL to an existing PostgreSQL server.';

export class RuntimeDirError extends Error {
  constructor(problem: string, options?: ErrorOptions) {
    super(`Embedded PostgreSQL runs as the postgres user when started as root. ${problem} ${WHAT_TO_DO}`, options);
  }
}

export function installedNativeDir(): string {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    // The package exports only dist/index.js (ESM), one level below the package root.
    return path.join(path.dirname(path.dirname(require.resolve(pkg))), 'native');
  } catch (error) {
    throw new Error(
      `PostgreSQL binaries for ${os.platform()}-${os.arch()} are missing (${pkg}). ` +
        'Run `npm ci` (its install script must be allowed in package.json "allowScripts"), or set DATABASE_URL to an existing server.',
      { cause: error },
    );
  }
}

function packageVersion(nativeDir: string): string {
  try {
    const { version } = JSON.parse(readFileSync(path.join(nativeDir, '..', 'package.json'), 'utf8')) as { version?: string };
    if (version && /^[\w.+-]+$/.test(version)) return version;
  } catch {
    // fall through: a copy keyed by its binary's content is just as safe
  }
  return createHash('sha256')
    .update(readFileSync(path.join(nativeDir, 'bin', 'postgres')))
    .digest('hex')
    .slice(0, 16);
}

/** PostgreSQL refuses to run as root; as root we run it as a `postgres` system user. */
export async function runAsUser(): Promise<RunAs> {
  if (process.getuid?.() !== 0) return {};
  const id = async () => {
    const [{ stdout: uid }, { stdout: gid }] = await Promise.all([
      execFileAsync('id', ['-u', 'postgres']),
      execFileAsync('id', ['-g', 'postgres']),
    ]);
    return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  };
  try {
    return await id();
  } catch {
    try {
      await execFileAsync('groupadd', ['--system', 'postgres']).catch(() => undefined);
      await execFileAsync('useradd', ['--system', '-g', 'postgres', '--no-create-home', '--shell', '/usr/sbin/nologin', 'postgres']);
      return await id();
    } catch (error) {
      throw new Error(
        'PostgreSQL refuses to run as root, and there is no `postgres` user to run it as: creating one with useradd failed ' +
          `(${error instanceof Error ? error.message.trim() : String(error)}). Create it (\`useradd --system postgres\`), ` +
          'run as a non-root user, or set DATABASE_URL to an existing PostgreSQL server.',
        { cause: error },
      );
    }
  }
}

/** Asks the kernel, as the postgres user, whether it may use these paths (every parent directory counts). */
async function reachable(runAs: RunAs, tests: string[]): Promise<boolean> {
  try {
    await execFileAsync('test', tests, { uid: runAs.uid, gid: runAs.gid, cwd: '/' });
    return true;
  } catch {
    return false;
  }
}

function canRunFrom(runAs: RunAs, nativeDir: string): Promise<boolean> {
  const bin = path.join(nativeDir, 'bin');
  return reachable(runAs, [
    '-x',
    path.join(bin, 'initdb'),
    '-a',
    '-x',
    path.join(bin, 'postgres'),
    '-a',
    '-x',
    path.join(nativeDir, 'share'),
  ]);
}

/** A directory root may run code from: root's, and nobody else may change it or anything in it. */
function untrusted(dir: string): string | undefined {
  if (!lstatSync(dir).isDirectory()) return `${dir} is not a directory`;
  const walk = (p: string): string | undefined => {
    const st = lstatSync(p);
    if (st.uid !== 0) return `${p} is not owned by root`;
    if (st.isSymbolicLink()) return undefined;
    if (st.mode & 0o022) return `${p} is writable by group or others`;
    if (st.isDirectory())
      for (const entry of readdirSync(p)) {
        const problem = walk(path.join(p, entry));
        if (problem) return problem;
      }
    return undefined;
  };
  return walk(dir);
}

/** The runtime root: created 0755 by root, or an existing one that only root can change. */
async function prepareRuntimeDir(runtimeDir: string, runAs: RunAs): Promise<string> {
  try {
    const created = mkdirSync(runtimeDir, { recursive: true, mode: 0o755 });
    // mkdir's mode is cut by the umask; what we create must be searchable by the postgres user.
    if (created) for (let dir = runtimeDir; dir.length >= created.length; dir = path.dirname(dir)) chmodSync(dir, 0o755);
  } catch (error) {
    throw new RuntimeDirError(`It could not create ${runtimeDir} (${(error as Error).message}).`, { cause: error });
  }
  const real = realpathSync(runtimeDir);
  const st = lstatSync(real);
  if (st.uid !== 0 || st.mode & 0o022) {
    throw new RuntimeDirError(
      `Its runtime dir ${runtimeDir} must be owned by root and not writable by group or others, since root-started processes run the binaries copied there.`,
    );
  }
  if (!(await reachable(runAs, ['-x', real]))) {
    throw new RuntimeDirError(
      `The postgres user cannot reach its runtime dir ${runtimeDir}: every directory above it must be searchable by others (mode o+x).`,
    );
  }
  return real;
}

function stripGroupOtherWrite(p: string): void {
  const st = lstatSync(p);
  if (st.isSymbolicLink()) return;
  if (st.mode & 0o022) chmodSync(p, st.mode & 0o7755);
  if (st.isDirectory()) for (const entry of readdirSync(p)) stripGroupOtherWrite(path.join(p, entry));
}

/**
 * The binaries' directory the postgres user can run: the package's own when it can reach it,
 * otherwise a root-owned copy made once per package version under the runtime root.
 */
export async function usableNativeDir(nativeDir: string, runAs: RunAs, runtimeDir: string, logger?: Logger): Promise<string> {
  if (runAs.uid === undefined || (await canRunFrom(runAs, nativeDir))) return nativeDir;
  const root = await prepareRuntimeDir(runtimeDir, runAs);
  const copy = path.join(root, `postgres-${packageVersion(nativeDir)}`);
  if (existsSync(copy) || lstatSync(copy, { throwIfNoEntry: false })) {
    const problem = untrusted(copy);
    if (problem) {
      logger?.warn({ copy, problem }, 'replacing a copy of the PostgreSQL binaries that root does not control');
      const aside = `${copy}.untrusted-${randomBytes(4).toString('hex')}`;
      renameSync(copy, aside);
      rmSync(aside, { recursive: true, force: true });
    }
  }
  if (!existsSync(copy)) {
    logger?.info({ from: nativeDir, to: copy }, 'copying the PostgreSQL binaries where the postgres user can run them');
    // Built under a temporary name and renamed into place, so a copy cut short is never used
    // and parallel starts (dev and tests) do not step on each other.
    const building = path.join(root, `.postgres-building-${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      mkdirSync(building, { mode: 0o755 });
      for (const part of ['bin', 'lib', 'share']) {
        cpSync(path.join(nativeDir, part), path.join(building, part), { recursive: true, verbatimSymlinks: true });
      }
      stripGroupOtherWrite(building);
      chmodSync(building, 0o755);
      try {
        renameSync(building, copy);
      } catch (error) {
        // Another process finished its copy first; use that one.
        if (!['EEXIST', 'ENOTEMPTY'].includes((error as NodeJS.ErrnoException).code ?? '')) throw error;
      }
    } catch (error) {
      throw new RuntimeDirError(`Copying its binaries from ${nativeDir} to ${copy} failed (${(error as Error).message}).`, {
        cause: error,
      });
    } finally {
      rmSync(building, { recursive: true, force: true });
    }
    const problem = untrusted(copy);
    if (problem) throw new RuntimeDirError(`The copy of its binaries is not safe to run: ${problem}.`);
  }
  if (!(await canRunFrom(runAs, copy))) throw new RuntimeDirError(`The postgres user cannot run the binaries copied to ${copy}.`);
  return copy;
}

/** The data dir's real path, following a symlink left by an earlier run. */
export function realDataPath(dataDir: string): string {
  try {
    return realpathSync(dataDir);
  } catch {
    mkdirSync(path.dirname(dataDir), { recursive: true });
    return path.join(realpathSync(path.dirname(dataDir)), path.basename(dataDir));
  }
}

/**
 * Where PostgreSQL keeps the data of `dataDir`: in place when the postgres user can reach it,
 * otherwise a directory under the runtime root keyed by the data dir's real path.
 */
export async function dataLocation(dataDir: string, runAs: RunAs, runtimeDir: string): Promise<string> {
  const real = realDataPath(dataDir);
  if (runAs.uid === undefined || (await reachable(runAs, ['-x', path.dirname(real)]))) return real;
  const parent = path.join(await prepareRuntimeDir(runtimeDir, runAs), 'data');
  // 0711: the postgres user may enter its own directories here but not list the others.
  mkdirSync(parent, { mode: 0o711, recursive: true });
  const st = lstatSync(parent);
  if (!st.isDirectory() || st.uid !== 0 || st.mode & 0o022) {
    throw new RuntimeDirError(`${parent} must be a directory owned by root and not writable by group or others.`);
  }
  chmodSync(parent, 0o711);
  return path.join(parent, createHash('sha256').update(real).digest('hex').slice(0, 24));
}
