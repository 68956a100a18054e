import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** The project's package.json, found upward from this file (lib/ from source, dist/lib/ once built). */
function packageVersion(): string | undefined {
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'mcp-fleet') return pkg.version;
  }
  return undefined;
}

/** The commit this code was built from: GIT_COMMIT (set by the image build), else the checkout's HEAD, else unknown. */
function commit(env: NodeJS.ProcessEnv): string | undefined {
  if (env.GIT_COMMIT) return env.GIT_COMMIT.slice(0, 12);
  try {
    return execFileSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: __dirname, timeout: 2000, stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return undefined;
  }
}

/**
 * The worker's build id for Worker Deployment Versioning when WORKER_BUILD_ID does not name one:
 * the package version and the commit (`0.1.0-1a2b3c4d5e6f`), so two builds of one version differ.
 */
export function defaultBuildId(env: NodeJS.ProcessEnv): string {
  const version = packageVersion() ?? '0.0.0';
  const sha = commit(env);
  return sha ? `${version}-${sha}` : version;
}
