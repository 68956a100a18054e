import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { startEmbeddedPostgres, type EmbeddedPostgres } from './embedded-postgres';
import { freePort } from './free-port';

/**
 * As root, PostgreSQL runs as the `postgres` user, which cannot enter a mode-700 directory
 * such as root's home or any `mktemp -d` folder. These clusters keep both their data and the
 * binaries behind such directories, as a clone in `mktemp -d` does.
 */
const asRoot = process.getuid?.() === 0;
// The package exports only dist/index.js, which lies one level below the package root.
const packageDir = path.dirname(path.dirname(require.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}`)));

async function query<T>(url: string, sql: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end();
  }
}

function mode(p: string): number {
  return statSync(p).mode & 0o777;
}

describe('startEmbeddedPostgres from private directories', () => {
  const scratch: string[] = [];
  const clusters: EmbeddedPostgres[] = [];
  const privateDir = () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-private-'));
    scratch.push(dir);
    return dir;
  };
  // A runtime root of the test's own, so the copy of the binaries happens in this test.
  const runtimeDir = path.join(os.tmpdir(), `mcp-fleet-runtime-test-${randomBytes(4).toString('hex')}`);
  scratch.push(runtimeDir);

  afterAll(async () => {
    for (const pg of clusters) await pg.remove();
    for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  });

  it('runs a cluster whose data dir and binaries lie behind mode-700 directories, without changing their modes', async () => {
    const home = privateDir();
    const checkout = privateDir();
    // The package reached through a mode-700 path, like node_modules in a private clone.
    symlinkSync(packageDir, path.join(checkout, 'pkg'));
    const nativeDir = path.join(checkout, 'pkg', 'native');
    const dataDir = path.join(home, '.data', 'postgres');
    const options = { dataDir, port: await freePort(), database: 'private_test', runtimeDir, nativeDir };

    const pg = await startEmbeddedPostgres(options);
    clusters.push(pg);
    const [{ dir }] = await query<{ dir: string }>(pg.url, "SELECT current_setting('data_directory') AS dir");
    await query(pg.url, 'CREATE TABLE kept (id int)');
    const exe = readlinkSync(`/proc/${pg.pid}/exe`);

    expect(mode(home)).toBe(0o700);
    expect(mode(checkout)).toBe(0o700);
    expect(realpathSync(dataDir)).toBe(dir);
    expect(existsSync(`${dataDir}.password`)).toBe(true);
    if (asRoot) {
      // Data and binaries moved to where the postgres user can reach them, owned as they must be.
      expect(lstatSync(dataDir).isSymbolicLink()).toBe(true);
      expect(dir.startsWith(`${realpathSync(runtimeDir)}/`)).toBe(true);
      expect(statSync(dir).uid).toBe(Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })));
      expect(exe.startsWith(`${realpathSync(runtimeDir)}/`)).toBe(true);
      const copy = path.dirname(path.dirname(exe));
      expect(statSync(copy).uid).toBe(0);
      expect(mode(copy)).toBe(0o755);
      expect(mode(runtimeDir)).toBe(0o755);
    } else {
      // A normal user owns its directories: everything stays in place, nothing is copied.
      expect(dir).toBe(dataDir);
      expect(exe).toBe(path.join(realpathSync(packageDir), 'native', 'bin', 'postgres'));
      expect(existsSync(runtimeDir)).toBe(false);
    }

    // A warm start reuses the data.
    await pg.stop();
    const warm = await startEmbeddedPostgres(options);
    clusters.push(warm);
    await expect(query(warm.url, 'SELECT * FROM kept')).resolves.toEqual([]);
    await warm.stop();

    if (asRoot) {
      // A copy of the binaries that others could have changed is never run: it is replaced.
      const copy = path.dirname(path.dirname(exe));
      chownSync(copy, 1, 1);
      chmodSync(path.join(copy, 'bin'), 0o777);
    }

    // Deleting the data dir means "start from scratch", even when the data lived elsewhere.
    rmSync(path.join(home, '.data'), { recursive: true, force: true });
    const fresh = await startEmbeddedPostgres(options);
    clusters.push(fresh);
    await expect(query(fresh.url, 'SELECT * FROM kept')).rejects.toThrow(/does not exist/);
    const [{ dir: freshDir }] = await query<{ dir: string }>(fresh.url, "SELECT current_setting('data_directory') AS dir");
    expect(freshDir).toBe(realpathSync(dataDir));
    if (asRoot) {
      const copy = path.dirname(path.dirname(readlinkSync(`/proc/${fresh.pid}/exe`)));
      expect(statSync(copy).uid).toBe(0);
      expect(mode(path.join(copy, 'bin'))).toBe(0o755);
    }

    // remove() deletes the data wherever it lives.
    await fresh.remove();
    expect(existsSync(freshDir)).toBe(false);
    expect(existsSync(dataDir)).toBe(false);
    expect(existsSync(`${dataDir}.password`)).toBe(false);
  });

  it('passes extra settings to the server (a benchmark reads commit times with track_commit_timestamp)', async () => {
    const dataDir = path.join(privateDir(), 'postgres');
    const pg = await startEmbeddedPostgres({
      dataDir,
      port: await freePort(),
      database: 'settings_test',
      runtimeDir,
      settings: { track_commit_timestamp: 'on' },
    });
    clusters.push(pg);
    await expect(query(pg.url, 'SHOW track_commit_timestamp')).resolves.toEqual([{ track_commit_timestamp: 'on' }]);
    const [{ committed }] = await query<{ committed: Date | null }>(
      pg.url,
      "SELECT pg_xact_commit_timestamp(xmin) AS committed FROM pg_database WHERE datname = 'settings_test'",
    );
    expect(committed).toBeInstanceOf(Date);
  });

  it('refuses a runtime dir that others may write to, and says what to do', async () => {
    const open = privateDir();
    chmodSync(open, 0o777);
    const home = privateDir();
    const checkout = privateDir();
    symlinkSync(packageDir, path.join(checkout, 'pkg'));
    const start = startEmbeddedPostgres({
      dataDir: path.join(home, 'pg'),
      port: await freePort(),
      database: 'refused',
      runtimeDir: open,
      nativeDir: path.join(checkout, 'pkg', 'native'),
    });
    if (asRoot) {
      const error = (await start.catch((e: Error) => e)) as Error;
      expect(error).toBeInstanceOf(Error);
      expect(error.message).toContain(open);
      expect(error.message).toMatch(/writable by group or others/);
      for (const way of ['EMBEDDED_POSTGRES_RUNTIME_DIR', 'DATABASE_URL', 'non-root user']) expect(error.message).toContain(way);
      expect(readdirSync(open)).toEqual([]);
    } else {
      const pg = await start;
      clusters.push(pg);
      await expect(query(pg.url, 'SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
    }
  });

  it('says what to do with data that was initialised where the postgres user cannot enter', async () => {
    const home = privateDir();
    const dataDir = path.join(home, 'pg');
    // Left by a run as another user: a data dir in place, behind a mode-700 directory.
    mkdirSync(dataDir);
    writeFileSync(path.join(dataDir, 'PG_VERSION'), '17\n');
    writeFileSync(`${dataDir}.password`, 'x');
    const error = (await startEmbeddedPostgres({ dataDir, port: await freePort(), database: 'stale', runtimeDir }).catch(
      (e: Error) => e,
    )) as Error;
    expect(error).toBeInstanceOf(Error);
    if (asRoot) {
      expect(error.message).toContain(`cannot reach the existing data in ${dataDir}. Delete it to start from scratch`);
      expect(existsSync(path.join(dataDir, 'PG_VERSION'))).toBe(true);
    }
  });

  it('says what to do when the postgres user cannot reach the runtime dir either', async () => {
    const home = privateDir();
    const checkout = privateDir();
    symlinkSync(packageDir, path.join(checkout, 'pkg'));
    const hidden = path.join(privateDir(), 'runtime');
    mkdirSync(hidden);
    const start = startEmbeddedPostgres({
      dataDir: path.join(home, 'pg'),
      port: await freePort(),
      database: 'hidden',
      runtimeDir: hidden,
      nativeDir: path.join(checkout, 'pkg', 'native'),
    });
    if (asRoot) {
      const error = (await start.catch((e: Error) => e)) as Error;
      expect(error.message).toContain('cannot reach');
      expect(error.message).toContain(hidden);
      for (const way of ['EMBEDDED_POSTGRES_RUNTIME_DIR', 'DATABASE_URL', 'non-root user']) expect(error.message).toContain(way);
    } else {
      const pg = await start;
      clusters.push(pg);
      await expect(query(pg.url, 'SELECT 1 AS one')).resolves.toEqual([{ one: 1 }]);
    }
  });
});
