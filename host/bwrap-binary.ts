/**
 * Finding the bwrap binary the reference host's sandbox (sandbox.ts) starts, checking it can run
 * here, and explaining why it cannot, with the fix.
 */
import { spawn } from 'node:child_process';
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';

/** Where `npm run dev`, the test harness and CI unpack bwrap (dev/bwrap.ts): the project's tools folder, beside host/ (or dist/host/). */
const PROJECT_BWRAP = path.join(
  path.resolve(__dirname, '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : ''),
  '.tools',
  'bwrap',
  'usr',
  'bin',
  'bwrap',
);

/** What the host tells about a sandbox it could not use, and how to fix it. */
export const FIX_INSTALL =
  "install bubblewrap (apt-get install bubblewrap), or set BWRAP_PATH (npm run dev unpacks one into .tools/bwrap), or set HOST_SANDBOX=off to run agents' commands unsandboxed";
const FIX_USERNS =
  'user namespaces are not available to unprivileged users here: enable them (sysctl user.max_user_namespaces=15000; on Debian before 11 kernel.unprivileged_userns_clone=1; on Ubuntu 23.10 and later kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor profile for bwrap), or set HOST_SANDBOX=off';

/** Whether the process runs as root: bwrap is then started as the sandbox's user. */
export function hostIsRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/**
 * Whether `uid`/`gid` could open `target` (every directory above it searchable, the target
 * itself with `mode`, r=4 x=1), from the permission bits (ACLs are not read: a "no" may be too
 * cautious, never too generous).
 */
export function reachableBy(target: string, uid: number, gid: number, mode: number): boolean {
  let real: string;
  try {
    real = realpathSync(target);
  } catch {
    return false;
  }
  const allows = (file: string, wanted: number): boolean => {
    try {
      const stats = statSync(file);
      const bits = stats.uid === uid ? (stats.mode >> 6) & 7 : stats.gid === gid ? (stats.mode >> 3) & 7 : stats.mode & 7;
      return (bits & wanted) === wanted;
    } catch {
      return false;
    }
  };
  const parts = real.split(path.sep).filter(Boolean);
  for (let i = 0; i < parts.length; i++) if (!allows(path.sep + parts.slice(0, i).join(path.sep), 1)) return false;
  return allows(real, mode);
}

export function findOnPath(program: string, dirs: readonly string[]): string | undefined {
  for (const dir of dirs) {
    const file = path.join(dir, program);
    try {
      const stats = statSync(file);
      if (stats.isFile() && (stats.mode & 0o111) !== 0) return file;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** The given path (the host's BWRAP_PATH), then `bwrap` on PATH, then the project's tools folder. */
export function locateBwrap(given: string | undefined, hostEnv: NodeJS.ProcessEnv): string | undefined {
  if (given) return given;
  if (hostEnv.BWRAP_PATH) return hostEnv.BWRAP_PATH;
  const dirs = (hostEnv.PATH ?? '').split(path.delimiter).filter((dir) => path.isAbsolute(dir));
  return findOnPath('bwrap', dirs) ?? findOnPath('bwrap', [path.dirname(PROJECT_BWRAP)]);
}

/** bwrap's complaint, with the fix that goes with it. */
export function explainFailure(stderr: string): string {
  const said = stderr.trim().split('\n').slice(-3).join(' ');
  if (/uid map|setting up uid|new namespace|No permissions to creat|Operation not permitted|user namespace/i.test(said))
    return `bwrap cannot create its namespaces (${said}): ${FIX_USERNS}`;
  return `bwrap failed (${said || 'no message'}): ${FIX_INSTALL}`;
}

/** Runs a command to its end (for the sandbox's own check), answering its exit code and stderr. */
export function runToEnd(
  file: string,
  args: string[],
  options: { uid?: number; gid?: number; env: NodeJS.ProcessEnv },
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: '/',
      env: options.env,
      stdio: ['ignore', 'ignore', 'pipe'],
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid } : {}),
    });
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', (error) => {
      clearTimeout(timer);
      resolve({ code: null, stderr: error.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}
