import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BWRAP_HELP, findBwrap } from './bwrap';

describe('findBwrap', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-bwrap-'));

  it('uses BWRAP_PATH first', async () => {
    const given = path.join(dir, 'bwrap');
    writeFileSync(given, '#!/bin/sh\n');
    chmodSync(given, 0o755);
    await expect(findBwrap({ bwrapPath: given, allowInstall: false })).resolves.toEqual({ path: given, source: 'BWRAP_PATH' });
  });

  it('explains every option when BWRAP_PATH is not an executable', async () => {
    const missing = path.join(dir, 'nope');
    const error = await findBwrap({ bwrapPath: missing, allowInstall: false }).catch((e: Error) => e);
    expect((error as Error).message).toContain(`BWRAP_PATH=${missing} is not an executable file`);
    for (const option of ['set BWRAP_PATH', 'apt-get install bubblewrap', 'dpkg-deb', 'HOST_SANDBOX=off'])
      expect(BWRAP_HELP).toContain(option);
  });

  it('finds (or unpacks once) a bwrap that runs on this machine', async () => {
    const found = await findBwrap();
    expect(execFileSync(found.path, ['--version'], { encoding: 'utf8' })).toMatch(/^bubblewrap \d+\.\d+/);
  });
});
