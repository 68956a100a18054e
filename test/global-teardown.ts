import { rmSync } from 'node:fs';

export default async function globalTeardown(): Promise<void> {
  const globals = globalThis.__MCP_FLEET_TEST__;
  if (!globals) return;
  await globals.stop();
  rmSync(globals.tmpDir, { recursive: true, force: true });
}
