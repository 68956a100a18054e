/**
 * What a host is asked to run for a catalog entry, and what its answers mean to a person:
 * the commands of an install or uninstall (with the requested version spliced in), whether a
 * verified version is the one asked for, and the sentence a failure is reported as.
 */
import type { ToolDefinition } from '../../entities';
import { fieldError } from '../errors';

/** Where a catalog command takes the requested version. */
export const VERSION_PLACEHOLDER = '{version}';

/** Versions as package managers write them; nothing a shell would read as syntax. */
export const VERSION_PATTERN = /^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$/;

export interface ToolCommands {
  name: string;
  installCommand: string;
  uninstallCommand: string;
  versionCommand: string;
  versionRegex?: string;
}

type CatalogCommands = Pick<ToolDefinition, 'name' | 'installCommand' | 'uninstallCommand' | 'versionCommand' | 'versionRegex'>;

/**
 * The entry's commands, `{version}` replaced by the requested version (a request without one
 * gets `latest`, the word npm, pip and most installers read as "the newest"). A version asked
 * of an entry whose install command takes none is refused rather than silently ignored.
 */
export function toolCommands(tool: CatalogCommands, version?: string): ToolCommands {
  if (version !== undefined) {
    if (!VERSION_PATTERN.test(version))
      throw fieldError('body.version', 'must be a version such as 1.2.3 (letters, digits and . + ~ _ -, at most 64)', 'invalid_version');
    if (!tool.installCommand.includes(VERSION_PLACEHOLDER)) {
      throw fieldError(
        'body.version',
        `${tool.name}'s install command takes no version (it has no ${VERSION_PLACEHOLDER}); leave version out`,
        'version_not_supported',
      );
    }
  }
  const fill = (command: string) => command.split(VERSION_PLACEHOLDER).join(version ?? 'latest');
  return {
    name: tool.name,
    installCommand: fill(tool.installCommand),
    uninstallCommand: fill(tool.uninstallCommand),
    versionCommand: tool.versionCommand,
    ...(tool.versionRegex ? { versionRegex: tool.versionRegex } : {}),
  };
}

/** `1.2` asked and `1.2.7` found is a match: a person asking for a line gets its newest release. */
export function versionMatches(found: string | undefined, wanted: string | undefined): boolean {
  if (wanted === undefined) return true;
  if (found === undefined) return false;
  return found === wanted || found.startsWith(`${wanted}.`);
}

const PACKAGE_MANAGERS = [
  'apt-get',
  'apt',
  'dpkg',
  'yum',
  'dnf',
  'apk',
  'zypper',
  'pacman',
  'brew',
  'npm',
  'pnpm',
  'yarn',
  'pip',
  'pip3',
  'snap',
  'curl',
  'wget',
  'sudo',
];

function lastLines(log: string, count: number): string {
  return log
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('$ ') && !/^\[.*\]$/.test(line))
    .slice(-count)
    .join(' / ')
    .slice(0, 300);
}

/** The program a shell could not find, from `sh: 1: apt-get: not found` or `npm not found`. */
function missingProgram(log: string): string | undefined {
  const pattern = /(?:^|[\s:'"])([\w.+-]+)(?::| is)? (?:command )?not found/gim;
  for (const match of log.matchAll(pattern)) {
    const name = match[1]!;
    if (PACKAGE_MANAGERS.includes(name)) return name;
  }
  return undefined;
}

export type ToolActionWord = 'install' | 'uninstall';

/**
 * The sentence a person reads for a host's refusal of an install or uninstall: the host's
 * short reason (`exit code 100`, `killed (SIGTERM)`) read together with the end of its log.
 */
export function explainHostFailure(action: ToolActionWord, hostText: string, log: string): string {
  const what = `the ${action} command`;
  if (/tool (install|uninstall|check)_tool (not found|disabled)|method not found/i.test(hostText))
    return 'this server does not support installs (it offers no install_tool)';
  if (/is not enabled on this host/i.test(hostText)) return 'this server does not run install commands (they are switched off on its host)';
  const tail = lastLines(log, 2);
  const detail = tail ? `: ${tail}` : '';
  if (/killed \((SIGTERM|SIGKILL|timeout)\)/i.test(hostText))
    return `${what} did not finish in time on the server and was stopped${detail}`;
  if (/\baborted\b/i.test(hostText)) return `${what} was stopped on the server before it finished (cancelled)`;
  const exit = /exit code (\d+)/i.exec(hostText)?.[1];
  const missing = missingProgram(log);
  if (missing) return `${what} needs ${missing}, which is not installed on the server (exit code ${exit ?? 'unknown'})`;
  if (exit === '127') return `${what} runs a program that is not installed on the server (exit code 127)${detail}`;
  if (/permission denied|are you root|must be run as root/i.test(log))
    return `${what} lacks the rights it needs on the server (run the host as a user that may install)${exit ? ` (exit code ${exit})` : ''}${detail}`;
  if (exit) return `${what} failed with exit code ${exit}${detail}`;
  return `${what} failed: ${hostText.slice(0, 300) || 'the server gave no reason'}`;
}
