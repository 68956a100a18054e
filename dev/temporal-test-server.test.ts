import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  findTemporalTestServer,
  TEMPORAL_TEST_SERVER_DIR,
  TEMPORAL_TEST_SERVER_HELP,
  TEMPORAL_TEST_SERVER_VERSION,
} from './temporal-test-server';

describe('findTemporalTestServer', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-test-server-'));

  it('uses TEMPORAL_TEST_SERVER_PATH first', async () => {
    const given = path.join(dir, 'test-server');
    writeFileSync(given, '#!/bin/sh\n');
    chmodSync(given, 0o755);
    await expect(findTemporalTestServer({ serverPath: given, allowInstall: false })).resolves.toEqual({
      path: given,
      source: 'TEMPORAL_TEST_SERVER_PATH',
    });
  });

  it('explains every option when TEMPORAL_TEST_SERVER_PATH is not an executable', async () => {
    const missing = path.join(dir, 'nope');
    const error = await findTemporalTestServer({ serverPath: missing, allowInstall: false }).catch((e: Error) => e);
    expect((error as Error).message).toContain(`TEMPORAL_TEST_SERVER_PATH=${missing} is not an executable file`);
    expect((error as Error).message).toContain(TEMPORAL_TEST_SERVER_HELP);
    for (const option of ['set TEMPORAL_TEST_SERVER_PATH', 'Maven (mvn)', 'Maven Central', 'JDK'])
      expect(TEMPORAL_TEST_SERVER_HELP).toContain(option);
  });

  it('finds the one the global setup installed in the tools folder: a launcher and the jars of the pinned version', async () => {
    const found = await findTemporalTestServer({ allowInstall: false });
    expect(found).toEqual({
      path: path.join(TEMPORAL_TEST_SERVER_DIR, TEMPORAL_TEST_SERVER_VERSION, 'bin', 'temporal-test-server'),
      source: 'project tools folder',
    });
    const jars = readdirSync(path.join(TEMPORAL_TEST_SERVER_DIR, TEMPORAL_TEST_SERVER_VERSION, 'lib'));
    expect(jars).toContain(`temporal-test-server-${TEMPORAL_TEST_SERVER_VERSION}.jar`);
    // The launcher's shell syntax, without starting a JVM (test/time-skipping.test.ts runs it).
    expect(spawnSync('sh', ['-n', found.path]).status).toBe(0);
  });
});
