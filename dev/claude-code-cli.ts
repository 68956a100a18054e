/**
 * The real Claude Code CLI, for `npm run test:llm` and for trying the claude-code engine
 * locally: installed once into .tools/claude-code from the npm registry, the way the Temporal
 * CLI is installed into .tools/temporal.
 *
 * `@anthropic-ai/claude-code` is a wrapper whose `bin/claude.exe` is a 500-byte placeholder:
 * its postinstall copies the native binary of an optional dependency
 * (`@anthropic-ai/claude-code-<platform>`, ~400 MB) over it. The install here runs with
 * `--ignore-scripts` (nothing of the package runs at install time, no allowScripts entry) and
 * uses that native binary directly; it needs no Node.js (the wrapper asks for Node 22, the
 * project runs on 20). Not a devDependency: every `npm ci` (CI, production builds) would fetch
 * 400 MB that only the llm tests use.
 */
import { execFile, spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { isExecutable } from './executables';
import { TOOLS_DIR } from './temporal-cli';

const execFileAsync = promisify(execFile);

/** The version the llm tests were written against (its stream-json lines are in test/fixtures/claude-code/). */
export const CLAUDE_CODE_VERSION = '2.1.332';
export const CLAUDE_CODE_DIR = path.join(TOOLS_DIR, 'claude-code');

/** The platform package's suffix, as the wrapper's install.cjs names it (musl has its own build). */
function platformKey(): string {
  if (process.platform !== 'linux') return `${process.platform}-${process.arch}`;
  const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
  return `linux-${process.arch}${report.header?.glibcVersionRuntime === undefined ? '-musl' : ''}`;
}

/** Where the native binary is once installed. */
export function claudeCodeBinary(): string {
  return path.join(CLAUDE_CODE_DIR, 'node_modules', '@anthropic-ai', `claude-code-${platformKey()}`, 'claude');
}

function installedVersion(binary: string): string | undefined {
  if (!isExecutable(binary)) return undefined;
  // `--version` writes nothing to HOME (checked with an empty one).
  const result = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  return result.status === 0 ? result.stdout.trim().split(' ')[0] : undefined;
}

/**
 * The CLI's native binary: `cliPath` (CLAUDE_CODE_PATH) when given, else the one in
 * .tools/claude-code, installed there first (npm, from the registry) when it is missing or
 * another version.
 */
export async function installClaudeCode(
  options: { cliPath?: string; log?: (message: string) => void } = {},
): Promise<{ path: string; version: string }> {
  const given = options.cliPath;
  if (given) {
    const version = installedVersion(given);
    if (!version) throw new Error(`CLAUDE_CODE_PATH=${given} does not answer --version`);
    return { path: given, version };
  }
  const binary = claudeCodeBinary();
  const present = installedVersion(binary);
  if (present === CLAUDE_CODE_VERSION) return { path: binary, version: present };
  options.log?.(`installing @anthropic-ai/claude-code@${CLAUDE_CODE_VERSION} into ${CLAUDE_CODE_DIR}, once`);
  mkdirSync(CLAUDE_CODE_DIR, { recursive: true });
  await execFileAsync(
    'npm',
    [
      'install',
      '--prefix',
      CLAUDE_CODE_DIR,
      '--no-save',
      '--no-package-lock',
      '--ignore-scripts',
      '--no-audit',
      '--no-fund',
      '--loglevel=error',
      `@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}`,
    ],
    { timeout: 600_000, maxBuffer: 10 * 1024 * 1024 },
  );
  const version = installedVersion(binary);
  if (version !== CLAUDE_CODE_VERSION)
    throw new Error(`npm installed @anthropic-ai/claude-code, but ${binary} answers ${version ?? 'nothing'} to --version`);
  return { path: binary, version };
}
