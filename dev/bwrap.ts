/**
 * bubblewrap (`bwrap`), the sandbox the reference host runs agents' commands in
 * (host/sandbox.ts). `npm run dev`, the test harness and CI find it the way they find the
 * Temporal CLI: BWRAP_PATH, then PATH, then the project's tools folder, where it is installed
 * once without root: the Debian package is downloaded (`apt-get download`, or the pinned file
 * from deb.debian.org when apt cannot) and unpacked with `dpkg-deb -x`, never installed into
 * the system.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../lib/logger';
import { isExecutable, onPath } from './executables';
import { TOOLS_DIR } from './temporal-cli';

const execFileAsync = promisify(execFile);

export const BWRAP_DIR = path.join(TOOLS_DIR, 'bwrap');
/** Where the unpacked package puts the binary; the host looks here too (host/sandbox.ts). */
export const BWRAP_TOOLS_BINARY = path.join(BWRAP_DIR, 'usr', 'bin', 'bwrap');

/**
 * The package fetched when apt cannot fetch one (no package lists on a fresh machine): Debian
 * 12's, for amd64, checked against its SHA-256 before it is unpacked.
 */
const PINNED_DEB = {
  arch: 'x64',
  url: 'http://deb.debian.org/debian/pool/main/b/bubblewrap/bubblewrap_0.8.0-2+deb12u1_amd64.deb',
  sha256: '3cc9134a3286ad01a323dcd924ba123eb634cefaeec82d774257e06308aeaadb',
};

export const BWRAP_HELP = [
  "bubblewrap (bwrap), which sandboxes the reference host's agent commands, was not found. Options, in the order mcp-fleet tries them:",
  '  1. set BWRAP_PATH to the `bwrap` binary;',
  '  2. install it on the system: apt-get install bubblewrap (dnf install bubblewrap, pacman -S bubblewrap, ...);',
  `  3. let mcp-fleet unpack it into ${BWRAP_TOOLS_BINARY} (needs apt-get download or access to deb.debian.org, and dpkg-deb);`,
  "  or run agents' commands unsandboxed with HOST_SANDBOX=off (not for hosts that run agents you do not trust).",
].join('\n');

export interface FoundBwrap {
  path: string;
  source: 'BWRAP_PATH' | 'PATH' | 'project tools folder' | 'unpacked the Debian package';
}

function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

/** The .deb in `dir`: apt's own download first (its mirror, proxy and signatures), else the pinned file. */
async function downloadDeb(dir: string, logger?: Logger): Promise<string> {
  if (has('apt-get')) {
    try {
      await execFileAsync('apt-get', ['download', 'bubblewrap'], { cwd: dir, timeout: 120_000 });
      const deb = readdirSync(dir).find((name) => name.startsWith('bubblewrap_') && name.endsWith('.deb'));
      if (deb) return path.join(dir, deb);
    } catch (error) {
      logger?.warn({ err: error }, 'apt-get download bubblewrap failed; trying the pinned package');
    }
  }
  if (process.arch !== PINNED_DEB.arch) throw new Error(`apt-get download bubblewrap failed, and no package is pinned for ${process.arch}`);
  const response = await fetch(PINNED_DEB.url, { signal: AbortSignal.timeout(120_000) });
  if (!response.ok) throw new Error(`${PINNED_DEB.url} answered ${response.status}`);
  const bytes = Buffer.from(await response.arrayBuffer());
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (digest !== PINNED_DEB.sha256) throw new Error(`${PINNED_DEB.url} has SHA-256 ${digest}, expected ${PINNED_DEB.sha256}`);
  const file = path.join(dir, path.basename(PINNED_DEB.url));
  writeFileSync(file, bytes);
  return file;
}

/** Unpacks the bubblewrap package into BWRAP_DIR (nothing is installed into the system). */
export async function unpackBwrap(logger?: Logger): Promise<string> {
  if (!has('dpkg-deb')) throw new Error('dpkg-deb is not installed');
  mkdirSync(TOOLS_DIR, { recursive: true });
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-bwrap-deb-'));
  try {
    const deb = await downloadDeb(scratch, logger);
    // Unpacked beside, then moved: an interrupted unpack leaves no half a binary where the host looks.
    const unpacked = path.join(scratch, 'root');
    await execFileAsync('dpkg-deb', ['-x', deb, unpacked], { timeout: 60_000 });
    rmSync(BWRAP_DIR, { recursive: true, force: true });
    await execFileAsync('mv', [unpacked, BWRAP_DIR]);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  if (!isExecutable(BWRAP_TOOLS_BINARY)) throw new Error(`the package held no ${path.relative(BWRAP_DIR, BWRAP_TOOLS_BINARY)}`);
  return BWRAP_TOOLS_BINARY;
}

/**
 * Finds bwrap: BWRAP_PATH, then PATH, then the project's tools folder (unpacked there on first
 * use). Throws BWRAP_HELP when none works.
 */
export async function findBwrap(options: { bwrapPath?: string; logger?: Logger; allowInstall?: boolean } = {}): Promise<FoundBwrap> {
  const { bwrapPath, logger, allowInstall = true } = options;
  if (bwrapPath) {
    if (!isExecutable(bwrapPath)) throw new Error(`BWRAP_PATH=${bwrapPath} is not an executable file.\n${BWRAP_HELP}`);
    return { path: bwrapPath, source: 'BWRAP_PATH' };
  }
  const fromPath = onPath('bwrap');
  if (fromPath) return { path: fromPath, source: 'PATH' };
  if (existsSync(BWRAP_TOOLS_BINARY) && isExecutable(BWRAP_TOOLS_BINARY))
    return { path: BWRAP_TOOLS_BINARY, source: 'project tools folder' };
  if (allowInstall) {
    logger?.info({ target: BWRAP_DIR }, "unpacking bubblewrap (the sandbox of agents' commands) into the tools folder, once");
    try {
      return { path: await unpackBwrap(logger), source: 'unpacked the Debian package' };
    } catch (error) {
      throw new Error(`could not unpack bubblewrap: ${error instanceof Error ? error.message : String(error)}\n${BWRAP_HELP}`);
    }
  }
  throw new Error(BWRAP_HELP);
}
