/** `npm run build` step: writes the workflow bundles production workers load instead of bundling at start, with and without tracing. */
import { writeFileSync } from 'node:fs';
import { bundleWorkflows, PREBUILT_BUNDLE_PATH, PREBUILT_UNTRACED_BUNDLE_PATH } from './worker';

async function main(): Promise<void> {
  for (const [traced, file] of [
    [true, PREBUILT_BUNDLE_PATH],
    [false, PREBUILT_UNTRACED_BUNDLE_PATH],
  ] as const) {
    const { code } = await bundleWorkflows({ traced });
    writeFileSync(file, code);
    process.stdout.write(`workflow bundle written to ${file} (${Math.round(code.length / 1024)} KiB)\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
