import { TOOL_CATALOG, parseToolVersion, type ToolCatalogEntry } from './tool-catalog';

const REQUIRED_NAMES = [
  'git',
  'gh',
  'docker',
  'docker-compose',
  'kubectl',
  'helm',
  'nodejs',
  'python3',
  'go',
  'rust',
  'pnpm',
  'psql',
  'redis-cli',
  'jq',
  'curl',
  'ripgrep',
  'tmux',
  'terraform',
] as const;

interface VersionSample {
  name: string;
  output: string;
  expected: string;
}

const VERSION_SAMPLES: readonly VersionSample[] = [
  { name: 'git', output: 'git version 2.43.0\n', expected: '2.43.0' },
  { name: 'git', output: 'git version 2.39.3 (Apple Git-146)\n', expected: '2.39.3' },
  {
    name: 'gh',
    output: 'gh version 2.45.0 (2024-03-04)\nhttps://github.com/cli/cli/releases/tag/v2.45.0\n',
    expected: '2.45.0',
  },
  { name: 'docker', output: 'Docker version 25.0.3, build 4debf41\n', expected: '25.0.3' },
  { name: 'docker', output: 'Docker version 20.10.24+dfsg1, build 297e128\n', expected: '20.10.24' },
  { name: 'docker-compose', output: 'Docker Compose version v2.24.5\n', expected: '2.24.5' },
  { name: 'docker-compose', output: 'Docker Compose version 2.20.2+ds1-0ubuntu1~22.04.1\n', expected: '2.20.2' },
  {
    name: 'kubectl',
    output: 'Client Version: v1.29.2\nKustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3\n',
    expected: '1.29.2',
  },
  {
    name: 'kubectl',
    output:
      'Client Version: version.Info{Major:"1", Minor:"27", GitVersion:"v1.27.3", GitCommit:"25b4e43193bcda6c7328a6d147b1fb73a33f1598", GitTreeState:"clean"}\nKustomize Version: v5.0.1\n',
    expected: '1.27.3',
  },
  { name: 'helm', output: 'v3.14.2+gc309b6f\n', expected: '3.14.2' },
  { name: 'nodejs', output: 'v20.11.0\n', expected: '20.11.0' },
  { name: 'python3', output: 'Python 3.11.2\n', expected: '3.11.2' },
  { name: 'go', output: 'go version go1.22.1 linux/amd64\n', expected: '1.22.1' },
  { name: 'go', output: 'go version go1.20 linux/arm64\n', expected: '1.20' },
  { name: 'rust', output: 'rustc 1.76.0 (07dca489a 2024-02-04)\n', expected: '1.76.0' },
  { name: 'pnpm', output: '8.15.4\n', expected: '8.15.4' },
  { name: 'yarn', output: '1.22.21\n', expected: '1.22.21' },
  {
    name: 'psql',
    output: 'psql (PostgreSQL) 16.2 (Ubuntu 16.2-1.pgdg22.04+1)\n',
    expected: '16.2',
  },
  { name: 'psql', output: 'psql (PostgreSQL) 15.6 (Debian 15.6-0+deb12u1)\n', expected: '15.6' },
  { name: 'redis-cli', output: 'redis-cli 7.0.15\n', expected: '7.0.15' },
  { name: 'jq', output: 'jq-1.6\n', expected: '1.6' },
  { name: 'jq', output: 'jq-1.7.1\n', expected: '1.7.1' },
  {
    name: 'curl',
    output: 'curl 7.88.1 (x86_64-pc-linux-gnu) libcurl/7.88.1 OpenSSL/3.0.11 zlib/1.2.13 brotli/1.0.9\nRelease-Date: 2023-02-20\n',
    expected: '7.88.1',
  },
  {
    name: 'ripgrep',
    output: 'ripgrep 14.1.0\n\nfeatures:+pcre2\nsimd(compile):+SSE2,-SSSE3,-AVX2\n',
    expected: '14.1.0',
  },
  { name: 'tmux', output: 'tmux 3.3a\n', expected: '3.3a' },
  { name: 'tmux', output: 'tmux 3.4\n', expected: '3.4' },
  { name: 'tmux', output: 'tmux next-3.5\n', expected: '3.5' },
  {
    name: 'terraform',
    output: 'Terraform v1.7.4\non linux_amd64\n',
    expected: '1.7.4',
  },
  {
    name: 'make',
    output: 'GNU Make 4.3\nBuilt for x86_64-pc-linux-gnu\nCopyright (C) 1988-2020 Free Software Foundation, Inc.\n',
    expected: '4.3',
  },
  {
    name: 'unzip',
    output: 'UnZip 6.00 of 20 April 2009, by Debian. Original by Info-ZIP.\n',
    expected: '6.00',
  },
  {
    name: 'aws-cli',
    output: 'aws-cli/2.15.25 Python/3.11.8 Linux/6.5.0-1014-aws exe/x86_64.ubuntu.22 prompt/off\n',
    expected: '2.15.25',
  },
];

const KEBAB_CASE = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

function getEntry(name: string): ToolCatalogEntry {
  const entry = TOOL_CATALOG.find((candidate) => candidate.name === name);
  if (!entry) {
    throw new Error(`No catalog entry named "${name}"`);
  }
  return entry;
}

function countCaptureGroups(source: string): number {
  const match = new RegExp(`${source}|`).exec('');
  if (!match) {
    throw new Error(`Regex ${source} did not match the empty alternative`);
  }
  return match.length - 1;
}

describe('TOOL_CATALOG', () => {
  it.each(REQUIRED_NAMES)('contains required tool %s', (name) => {
    expect(TOOL_CATALOG.map((entry) => entry.name)).toContain(name);
  });

  it('has at most 24 entries', () => {
    expect(TOOL_CATALOG.length).toBeLessThanOrEqual(24);
  });

  it('has unique names', () => {
    const names = TOOL_CATALOG.map((entry) => entry.name);
    expect(new Set(names).size).toBe(names.length);
  });

  describe.each(TOOL_CATALOG.map((entry) => [entry.name, entry] as const))('%s', (_name, entry) => {
    it('has a kebab-case name', () => {
      expect(entry.name).toMatch(KEBAB_CASE);
    });

    it('has non-empty fields', () => {
      for (const value of Object.values(entry)) {
        expect(typeof value).toBe('string');
        expect(value.trim()).not.toBe('');
      }
    });

    it('has an https homepage', () => {
      expect(entry.homepage).toMatch(/^https:\/\//);
    });

    it('has a version regex that compiles with exactly one capture group', () => {
      expect(() => new RegExp(entry.versionRegex)).not.toThrow();
      expect(countCaptureGroups(entry.versionRegex)).toBe(1);
    });

    it('runs apt-get non-interactively', () => {
      for (const command of [entry.installCommand, entry.uninstallCommand]) {
        expect(command).not.toMatch(/(?<!DEBIAN_FRONTEND=noninteractive )\bapt-get\b/);
      }
    });

    it('has at least one version sample', () => {
      expect(VERSION_SAMPLES.some((sample) => sample.name === entry.name)).toBe(true);
    });
  });
});

describe('parseToolVersion', () => {
  it.each(VERSION_SAMPLES)('$name: parses $expected', ({ name, output, expected }) => {
    expect(parseToolVersion(getEntry(name), output)).toBe(expected);
  });

  it('returns null when the output does not match', () => {
    expect(parseToolVersion(getEntry('git'), 'command not found: git')).toBeNull();
  });

  it('returns null when the capture group did not participate', () => {
    expect(parseToolVersion({ versionRegex: 'foo(\\d+)?' }, 'foo')).toBeNull();
  });
});
