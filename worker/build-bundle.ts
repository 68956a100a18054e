/** `npm run build` step: writes the workflow bundle production workers load instead of bundling at start. */
import { writeFileSync } from 'node:fs';
import { bundleWorkflows, PREBUILT_BUNDLE_PATH } from './worker';

bundleWorkflows()
  .then(({ code }) => {
    writeFileSync(PREBUILT_BUNDLE_PATH, code);
    process.stdout.write(`workflow bundle written to ${PREBUILT_BUNDLE_PATH} (${Math.round(code.length / 1024)} KiB)\n`);
  })
  .catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
