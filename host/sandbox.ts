/**
 * The sandbox every agent command runs in on the reference host (runner.ts), built on
 * bubblewrap (bwrap). The program allowlist (tool-commands.ts) decides what may start; this is
 * the boundary around what it does once started, because many granted programs run other
 * programs by design (git aliases and hooks, `python3 -c`, make recipes, `find -exec`).
 *
 * One sandbox per command, in its own namespaces:
 * - mount: the system read-only (/usr, /etc and the rest of the root's system directories, the
 *   PATH directories the sandbox's user could read anyway), the agent's workspace the only
 *   writable place, a private /tmp (tmpfs), a fresh /proc and a minimal /dev. Nothing else:
 *   not the host's data dir, its code, the workspace root (other workspaces) nor any home
 *   directory, unless a PATH entry or HOST_SANDBOX_READ_PATHS names it (never one of the first
 *   three, which are masked even inside a named directory);
 * - pid: when the command's first process ends, bwrap's init ends and the kernel kills every
 *   other process of the namespace (a daemon the command forked does not outlive it); cancel
 *   and the limits kill the whole namespace the same way;
 * - network: none (only a loopback of its own), or, for an agent with a network allowlist, an
 *   HTTP proxy of the host that lets only its hosts through (sandbox-network.ts);
 * - user: bwrap runs unprivileged, as the host's user or, for a host running as root, as
 *   HOST_SANDBOX_UID (default 65534, nobody), and the command keeps that uid with no
 *   capabilities, no new privileges (bwrap sets no_new_privs) and no further user namespaces;
 *   ipc, uts and cgroup namespaces too.
 * Limits (prlimit, in the command's own user namespace): processes (RLIMIT_NPROC), memory
 * (RLIMIT_DATA per process), CPU time (RLIMIT_CPU), file size (RLIMIT_FSIZE), no core files;
 * sandbox-watch.ts stops a command that reaches the process limit or holds more memory in all
 * its processes together.
 */
import { execFile } from 'node:child_process';
import {
  accessSync,
  chmodSync,
  constants,
  copyFileSync,
  lstatSync,
  mkdtempSync,
  readlinkSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { explainFailure, FIX_INSTALL, findOnPath, hostIsRoot, locateBwrap, reachableBy, runToEnd } from './bwrap-binary';
import { NETWORK_BRIDGE, PROXY_SOCKET_IN_SANDBOX, proxyEnvironment } from './sandbox-network';
import type { SandboxSettings } from './sandbox-settings';

export { SANDBOX_META_KEY } from '../lib/host-contract';

/** The host's own code (the project's checkout, or its build): never visible in a sandbox. */
const HOST_CODE = path.resolve(__dirname, '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '');

/** The root's directories that make up "the system", each visible read-only when it exists. */
const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32', '/etc'];

const MIB = 1024 * 1024;

/** The network bridge's own threads (node with one V8 worker), counted against RLIMIT_NPROC. */
const BRIDGE_TASKS = 8;

/** A command as the runner starts it: bwrap and its arguments, as whom. */
export interface SandboxedCommand {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Set on a host running as root: bwrap starts as the sandbox's user. */
  uid?: number;
  gid?: number;
}

export type SandboxCheck = { ok: true; bwrap: string } | { ok: false; reason: string };

export interface Sandbox {
  readonly settings: SandboxSettings;
  /** Why commands cannot run sandboxed here, with the fix; undefined when they can, or when the sandbox is off. */
  unusable(): Promise<string | undefined>;
  /** Makes a workspace (and the root above it) usable by the sandbox's user; called when the workspace is made. */
  prepareWorkspace(root: string, workspace: string): Promise<void>;
  /** Whether `program` is found on the sandbox's PATH. */
  hasProgram(program: string, hostEnv: NodeJS.ProcessEnv): boolean;
  /** Whether the sandbox's user can reach `target` on this machine (so it can be made visible). */
  canReach(target: string): boolean;
  /**
   * The bwrap command that runs argv in `workspace` (its only writable directory), with `env`;
   * with `proxySocket`, the command reaches that proxy (and nothing else) as HTTP(S)_PROXY.
   */
  wrap(
    argv: readonly string[],
    options: { workspace: string; env: NodeJS.ProcessEnv; readOnlyPaths?: string[]; proxySocket?: string },
  ): Promise<SandboxedCommand>;
  /** A fresh path for a command's proxy socket, where the sandbox's user can reach it. */
  proxySocketPath(): string;
  /** Removes what the sandbox made at start (a copy of bwrap). */
  close(): void;
}

function inside(parent: string, candidate: string): boolean {
  const relative = path.relative(parent, candidate);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * The host's sandbox. `hidden` are the directories no sandbox may see even when a PATH entry
 * or HOST_SANDBOX_READ_PATHS includes them: the workspace root (other agents' workspaces), the
 * host's data dir; the host's own code is always among them.
 */
export function createSandbox(settings: SandboxSettings, options: { hidden: string[]; hostEnv: NodeJS.ProcessEnv }): Sandbox {
  const root = hostIsRoot();
  const runAs = root ? { uid: settings.uid, gid: settings.gid } : undefined;
  const hidden = [...options.hidden, HOST_CODE].map((dir) => path.resolve(dir));
  /** The host's own directory for the sandbox: a copy of bwrap (or node) when needed, proxies' sockets. */
  let runtimeDir: string | undefined;
  const runtime = (): string => {
    runtimeDir ??= mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-sandbox-'));
    // Searchable, not listable: the sandbox's user reaches what it is given a path to.
    chmodSync(runtimeDir, 0o711);
    return runtimeDir;
  };
  let checked: Promise<SandboxCheck> | undefined;

  const reachable = (target: string, mode: number): boolean => {
    if (runAs) return reachableBy(target, runAs.uid, runAs.gid, mode);
    try {
      accessSync(target, mode === 1 ? constants.X_OK : constants.R_OK | constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const isHidden = (dir: string) => hidden.some((h) => inside(h, dir));
  const isSystem = (dir: string) => SYSTEM_PATHS.some((system) => inside(system, dir));

  /** The PATH directories a sandbox sees: absolute, existing, readable by its user, not hidden. */
  const pathDirs = (hostEnv: NodeJS.ProcessEnv): string[] => {
    const dirs: string[] = [];
    for (const entry of (hostEnv.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(path.delimiter)) {
      if (!path.isAbsolute(entry) || dirs.includes(entry)) continue;
      let real: string;
      try {
        real = realpathSync(entry);
      } catch {
        continue;
      }
      if (isHidden(real) || isHidden(entry) || !reachable(real, 5)) continue;
      dirs.push(entry);
    }
    return dirs;
  };

  /** The system's directories, read-only. */
  const systemMounts = (): string[] => {
    const args: string[] = [];
    for (const system of SYSTEM_PATHS) {
      let stats;
      try {
        stats = lstatSync(system);
      } catch {
        continue;
      }
      // Merged-/usr systems: /bin is a link to usr/bin, and stays one.
      if (stats.isSymbolicLink()) args.push('--symlink', readlinkSync(system), system);
      else if (stats.isDirectory()) args.push('--ro-bind', system, system);
    }
    return args;
  };

  /** The read-only extras (PATH, HOST_SANDBOX_READ_PATHS), then masks over hidden directories inside them. */
  const extraMounts = (hostEnv: NodeJS.ProcessEnv): string[] => {
    const args: string[] = [];
    const bound: string[] = [];
    for (const dir of [...pathDirs(hostEnv), ...settings.readPaths]) {
      if (isSystem(dir) || bound.some((b) => inside(b, dir))) continue;
      let real: string;
      try {
        real = realpathSync(dir);
      } catch {
        continue;
      }
      if (isHidden(real) || !reachable(real, 5)) continue;
      args.push('--ro-bind', real, dir);
      bound.push(dir);
    }
    // A named directory that holds a hidden one (a PATH entry above the data dir) does not show it:
    // an empty tmpfs over it, too small to fill memory with.
    for (const dir of hidden) if (bound.some((b) => inside(b, dir) && b !== dir)) args.push('--size', '65536', '--tmpfs', dir);
    return args;
  };

  const prlimit = (): string | undefined => findOnPath('prlimit', ['/usr/bin', '/bin', '/usr/sbin', '/sbin']);

  const limitArgs = (prlimitPath: string, network: boolean): string[] => {
    const { limits } = settings;
    return [
      prlimitPath,
      // bwrap's init is one of the sandbox's user's processes, and one more lets the watch see the limit
      // reached; the network bridge's threads count too.
      `--nproc=${limits.maxProcesses + 2 + (network ? BRIDGE_TASKS : 0)}`,
      `--data=${limits.memoryMb * MIB}`,
      `--cpu=${limits.cpuSeconds}:${limits.cpuSeconds + 1}`,
      `--fsize=${limits.fileSizeMb * MIB}`,
      '--core=0',
      '--',
    ];
  };

  const bwrapArgs = (
    workspace: string,
    readOnlyPaths: readonly string[],
    hostEnv: NodeJS.ProcessEnv,
    prlimitPath: string,
    proxySocket?: string,
  ): string[] => [
    '--unshare-all',
    '--unshare-user',
    '--disable-userns',
    '--die-with-parent',
    '--cap-drop',
    'ALL',
    '--hostname',
    'sandbox',
    ...systemMounts(),
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--size',
    String(settings.limits.tmpMb * MIB),
    '--tmpfs',
    '/tmp',
    // After /tmp: a directory named under it shows on the private /tmp.
    ...extraMounts(hostEnv),
    '--bind',
    workspace,
    workspace,
    ...readOnlyPaths.flatMap((item) => ['--ro-bind', item, item]),
    ...(proxySocket ? networkMounts(proxySocket) : []),
    // bwrap's own root and /dev are tmpfs, in memory and writable: read-only, with /dev/shm a bounded tmpfs of its own.
    '--remount-ro',
    '/dev',
    '--size',
    String(settings.limits.tmpMb * MIB),
    '--tmpfs',
    '/dev/shm',
    '--remount-ro',
    '/',
    '--chdir',
    workspace,
    '--',
    ...(proxySocket ? [nodeInSandbox(), '--v8-pool-size=1', '--max-old-space-size=64', '-e', NETWORK_BRIDGE, '--'] : []),
    ...limitArgs(prlimitPath, proxySocket !== undefined),
  ];

  /** node for the network bridge: the host's own, where the sandbox sees it. */
  const nodeInSandbox = (): string => process.execPath;
  const networkMounts = (proxySocket: string): string[] => {
    const node = process.execPath;
    const visible = isSystem(node) || reachable(node, 1);
    // A node the sandbox's user cannot reach (under /root) is copied once, beside bwrap's copy.
    const source = visible ? node : runnableCopy(node, 'node');
    return [...(isSystem(node) ? [] : ['--ro-bind', source, node]), '--ro-bind', proxySocket, PROXY_SOCKET_IN_SANDBOX];
  };

  const copies = new Map<string, string>();
  /** A copy of a program in the runtime directory, made once, that the sandbox's user can run. */
  const runnableCopy = (file: string, name: string): string => {
    let copy = copies.get(file);
    if (!copy) {
      copy = path.join(runtime(), name);
      copyFileSync(file, copy);
      chmodSync(copy, 0o755);
      copies.set(file, copy);
    }
    return copy;
  };

  /** bwrap as the sandbox's user can run it: on a root host, a copy outside private directories when needed. */
  const runnableBwrap = (found: string): string => (!runAs || reachable(found, 1) ? found : runnableCopy(found, 'bwrap'));

  const check = async (): Promise<SandboxCheck> => {
    if (process.platform !== 'linux')
      return {
        ok: false,
        reason: `the sandbox needs Linux (bubblewrap); this host runs on ${process.platform}: set HOST_SANDBOX=off to run agents' commands unsandboxed`,
      };
    const found = locateBwrap(settings.bwrapPath, options.hostEnv);
    if (!found) return { ok: false, reason: `bubblewrap (bwrap) was not found: ${FIX_INSTALL}` };
    try {
      accessSync(found, constants.X_OK);
    } catch {
      return { ok: false, reason: `${settings.bwrapPath ? `BWRAP_PATH=${found}` : found} is not an executable file: ${FIX_INSTALL}` };
    }
    const prlimitPath = prlimit();
    if (!prlimitPath)
      return {
        ok: false,
        reason: 'prlimit (util-linux) was not found in /usr/bin or /bin: the sandbox sets its limits with it (apt-get install util-linux)',
      };
    const bwrap = runnableBwrap(found);
    // A real sandbox in a scratch workspace: whatever stops one (no user namespaces, a workspace root its user cannot reach) shows here.
    const scratch = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-sandbox-check-'));
    try {
      chmodSync(scratch, 0o755);
      const trial = await runToEnd(bwrap, [...bwrapArgs(scratch, [], options.hostEnv, prlimitPath), 'true'], {
        ...runAs,
        env: { PATH: '/usr/bin:/bin' },
      });
      if (trial.code !== 0) return { ok: false, reason: explainFailure(trial.stderr) };
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
    return { ok: true, bwrap };
  };

  /** The sandbox's check, made once it succeeds (a failure is checked again: the operator may have fixed it). */
  const status = (): Promise<SandboxCheck> => {
    checked ??= check().then((result) => {
      if (!result.ok) checked = undefined;
      return result;
    });
    return checked;
  };

  return {
    settings,
    async unusable() {
      if (settings.mode === 'off') return undefined;
      const result = await status();
      return result.ok ? undefined : result.reason;
    },
    async prepareWorkspace(workspaceRoot, workspace) {
      if (settings.mode === 'off' || !runAs) return;
      // The root is searchable (not listable) by others so the sandbox's user can reach its own workspace in it.
      chmodSync(workspaceRoot, 0o711);
      const stats = statSync(workspace);
      if (stats.uid === runAs.uid && stats.gid === runAs.gid) return;
      chmodSync(workspace, 0o700);
      // A workspace made before the sandbox (or by the host itself) becomes the sandbox user's, all of it.
      await new Promise<void>((resolve, reject) =>
        execFile('chown', ['-R', '-h', `${runAs.uid}:${runAs.gid}`, '--', workspace], (error) => (error ? reject(error) : resolve())),
      );
    },
    hasProgram(program, hostEnv) {
      return (
        findOnPath(
          program,
          settings.mode === 'off' ? (hostEnv.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d)) : pathDirs(hostEnv),
        ) !== undefined
      );
    },
    async wrap(argv, { workspace, env, readOnlyPaths = [], proxySocket }) {
      const result = await status();
      if (!result.ok) throw new Error(result.reason);
      const prlimitPath = prlimit()!;
      const sandboxPath = pathDirs(env).join(path.delimiter);
      return {
        file: result.bwrap,
        args: [...bwrapArgs(workspace, readOnlyPaths, env, prlimitPath, proxySocket), ...argv],
        env: { ...env, PATH: sandboxPath, ...(proxySocket ? proxyEnvironment() : {}) },
        ...(runAs ? { uid: runAs.uid, gid: runAs.gid } : {}),
      };
    },
    canReach(target) {
      return reachable(target, 5);
    },
    proxySocketPath() {
      return path.join(runtime(), `proxy-${randomUUID()}.sock`);
    },
    close() {
      if (runtimeDir) rmSync(runtimeDir, { recursive: true, force: true });
      runtimeDir = undefined;
      copies.clear();
    },
  };
}
