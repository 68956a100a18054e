import { AppError } from '../errors';
import { explainHostFailure, toolCommands, versionMatches } from './host-install';

const entry = {
  name: 'probe',
  installCommand: 'npm install -g probe@{version}',
  uninstallCommand: 'npm uninstall -g probe',
  versionCommand: 'probe --version',
  versionRegex: 'v(\\S+)',
};

describe('what a host is asked to run', () => {
  it('puts the requested version (or latest) where the entry says, and nowhere else', () => {
    expect(toolCommands(entry, '2.1.0')).toEqual({ ...entry, installCommand: 'npm install -g probe@2.1.0' });
    expect(toolCommands(entry).installCommand).toBe('npm install -g probe@latest');
    expect(toolCommands({ ...entry, versionRegex: undefined })).not.toHaveProperty('versionRegex');
  });

  it('refuses a version the entry cannot take, or one a shell would read as syntax, on body.version', () => {
    for (const [tool, version, code] of [
      [{ ...entry, installCommand: 'apt-get install -y probe' }, '1.0', 'version_not_supported'],
      [entry, '1.0; rm -rf /', 'invalid_version'],
      [entry, '$(id)', 'invalid_version'],
    ] as const) {
      let error: unknown;
      try {
        toolCommands(tool, version);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(AppError);
      expect((error as AppError).details).toEqual([expect.objectContaining({ path: 'body.version', code })]);
    }
  });

  it('accepts the version asked for, or a release of the line asked for', () => {
    expect(versionMatches('1.2.7', undefined)).toBe(true);
    expect(versionMatches(undefined, undefined)).toBe(true);
    expect(versionMatches('1.2.7', '1.2')).toBe(true);
    expect(versionMatches('1.2.7', '1.2.7')).toBe(true);
    expect(versionMatches('1.20.0', '1.2')).toBe(false);
    expect(versionMatches(undefined, '1.2')).toBe(false);
  });
});

describe('what a failure says to a person', () => {
  it.each([
    ['MCP error -32602: Tool install_tool not found', '', 'this server does not support installs (it offers no install_tool)'],
    ['install_tool is not enabled on this host', '', 'this server does not run install commands (they are switched off on its host)'],
    [
      'install of x failed: killed (SIGTERM)',
      '$ sleep 999\n[killed (SIGTERM)]\n',
      'the install command did not finish in time on the server and was stopped',
    ],
    ['install of x failed: aborted', '', 'the install command was stopped on the server before it finished (cancelled)'],
    [
      'install of x failed: exit code 127',
      '$ apt-get update\nsh: 1: apt-get: not found\n[exit code 127]\n',
      'the install command needs apt-get, which is not installed on the server (exit code 127)',
    ],
    [
      'install of x failed: exit code 1',
      'npm not found: install nodejs first\n[exit code 1]\n',
      'the install command needs npm, which is not installed on the server (exit code 1)',
    ],
    [
      'install of x failed: exit code 127',
      '$ frobnicate\nsh: 1: frobnicate: not found\n',
      'the install command runs a program that is not installed on the server (exit code 127): sh: 1: frobnicate: not found',
    ],
    [
      'install of x failed: exit code 100',
      'E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\nE: are you root?\n',
      'the install command lacks the rights it needs on the server (run the host as a user that may install) (exit code 100): E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied) / E: are you root?',
    ],
    [
      'install of x failed: exit code 2',
      '$ make\nmake: *** No rule to make target\n[exit code 2]\n',
      'the install command failed with exit code 2: make: *** No rule to make target',
    ],
    ['something odd', '', 'the install command failed: something odd'],
  ])('%s', (hostText, log, sentence) => {
    expect(explainHostFailure('install', hostText, log)).toBe(sentence);
  });

  it('names the uninstall when an uninstall failed', () => {
    expect(explainHostFailure('uninstall', 'uninstall of x failed: exit code 3', '')).toBe('the uninstall command failed with exit code 3');
  });
});
