/**
 * Temporal's time-skipping test server (the Java one, `io.temporal.testserver.TestServer`), which
 * `TestWorkflowEnvironment.createTimeSkipping` runs for the tests of long timers
 * (test/time-skipping.test.ts). The SDK would download a native build of it, which fails where
 * only package registries are reachable; so it is found the way the Temporal CLI is:
 * TEMPORAL_TEST_SERVER_PATH, else the project's tools folder, where Maven installs it once from
 * Maven Central (the artifact and its dependencies as jars, and a small launcher the SDK runs).
 */
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../lib/logger';
import { isExecutable } from './executables';
import { TOOLS_DIR } from './temporal-cli';

const execFileAsync = promisify(execFile);

/** Maven Central's `io.temporal:temporal-test-server`; a new version installs beside the old one. */
export const TEMPORAL_TEST_SERVER_VERSION = '1.38.0';

export const TEMPORAL_TEST_SERVER_DIR = path.join(TOOLS_DIR, 'temporal-test-server');
const INSTALLED = path.join(TEMPORAL_TEST_SERVER_DIR, TEMPORAL_TEST_SERVER_VERSION);
const LAUNCHER = path.join(INSTALLED, 'bin', 'temporal-test-server');

export const TEMPORAL_TEST_SERVER_HELP = [
  "Temporal's time-skipping test server (Java) was not found. Options, in the order mcp-fleet tries them:",
  '  1. set TEMPORAL_TEST_SERVER_PATH to an executable that runs it: the SDK calls it with the port as its only argument;',
  `  2. let mcp-fleet install it into ${INSTALLED}: needs a JDK (java, 11 or newer) and Maven (mvn) with access to Maven Central.`,
].join('\n');

export interface FoundTestServer {
  path: string;
  source: 'TEMPORAL_TEST_SERVER_PATH' | 'project tools folder' | 'installed with Maven';
}

/** The artifact as the only dependency of an empty project, so `dependency:copy-dependencies` fetches it with its own. */
function pom(): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by dev/temporal-test-server.ts: the jars of Temporal's time-skipping test server. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>mcp-fleet.tools</groupId>
  <artifactId>temporal-test-server</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>io.temporal</groupId>
      <artifactId>temporal-test-server</artifactId>
      <version>${TEMPORAL_TEST_SERVER_VERSION}</version>
    </dependency>
  </dependencies>
</project>
`;
}

/**
 * The executable the SDK starts (`<launcher> <port>`): the TestServer main class takes the same
 * argument. JAVA_HOME's java when set. The heap is capped: the server keeps only the test's
 * histories, and the machine is shared.
 */
const LAUNCHER_SCRIPT = `#!/bin/sh
# Written by dev/temporal-test-server.ts: runs Temporal's time-skipping test server on port $1.
here=$(cd "$(dirname "$0")/.." && pwd)
exec "\${JAVA_HOME:+$JAVA_HOME/bin/}java" -Xmx512m -cp "$here/lib/*" io.temporal.testserver.TestServer "$@"
`;

function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Installs into a private folder and renames it into place, so an install that was killed, or
 * one racing another process's, never leaves a half-filled version folder behind.
 */
async function install(logger?: Logger): Promise<void> {
  mkdirSync(TEMPORAL_TEST_SERVER_DIR, { recursive: true });
  const partial = mkdtempSync(path.join(TEMPORAL_TEST_SERVER_DIR, `.${TEMPORAL_TEST_SERVER_VERSION}-partial-`));
  try {
    writeFileSync(path.join(partial, 'pom.xml'), pom());
    // The user's local Maven repository (~/.m2) is the download cache, and their settings.xml (mirrors, proxies) applies.
    await execFileAsync(
      'mvn',
      [
        '--batch-mode',
        '--quiet',
        'dependency:copy-dependencies',
        '-DincludeScope=runtime',
        `-DoutputDirectory=${path.join(partial, 'lib')}`,
      ],
      { cwd: partial, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 },
    ).catch((error: Error & { stdout?: string }) => {
      throw new Error(
        `mvn could not fetch io.temporal:temporal-test-server:${TEMPORAL_TEST_SERVER_VERSION}: ${error.message}\n${error.stdout ?? ''}`,
      );
    });
    mkdirSync(path.join(partial, 'bin'));
    writeFileSync(path.join(partial, 'bin', 'temporal-test-server'), LAUNCHER_SCRIPT);
    chmodSync(path.join(partial, 'bin', 'temporal-test-server'), 0o755);
    try {
      renameSync(partial, INSTALLED);
    } catch (error) {
      // Another process finished first: its copy is as good as this one.
      if (!isExecutable(LAUNCHER)) throw error;
    }
    logger?.info({ dir: INSTALLED }, 'installed the Temporal test server');
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
}

/** Finds the time-skipping test server: TEMPORAL_TEST_SERVER_PATH, then the tools folder, where it is installed on first use. */
export async function findTemporalTestServer(
  options: { serverPath?: string; logger?: Logger; allowInstall?: boolean } = {},
): Promise<FoundTestServer> {
  const { serverPath, logger, allowInstall = true } = options;
  if (serverPath) {
    if (!isExecutable(serverPath))
      throw new Error(`TEMPORAL_TEST_SERVER_PATH=${serverPath} is not an executable file.\n${TEMPORAL_TEST_SERVER_HELP}`);
    return { path: serverPath, source: 'TEMPORAL_TEST_SERVER_PATH' };
  }
  if (isExecutable(LAUNCHER)) return { path: LAUNCHER, source: 'project tools folder' };
  if (!allowInstall || !has('mvn') || !has('java')) throw new Error(TEMPORAL_TEST_SERVER_HELP);
  logger?.info({ version: TEMPORAL_TEST_SERVER_VERSION, dir: INSTALLED }, 'installing the Temporal test server with Maven, once');
  try {
    await install(logger);
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${TEMPORAL_TEST_SERVER_HELP}`);
  }
  return { path: LAUNCHER, source: 'installed with Maven' };
}
