import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../lib/logger';

const TEMPORAL_LEVELS: Record<string, LogLevel> = { trace: 'TRACE', debug: 'DEBUG', info: 'INFO', warn: 'WARN', error: 'ERROR', fatal: 'ERROR', silent: 'ERROR' };

/**
 * Routes the Temporal SDK's own logs into pino. Must run before the first NativeConnection;
 * the runtime is process-wide, so a second call is a no-op. Its default shutdown signals
 * (SIGINT/SIGTERM) make running workers shut down gracefully.
 */
export function installTemporalRuntime(logger: Logger): void {
  try {
    Runtime.install({
      logger: new DefaultLogger(TEMPORAL_LEVELS[logger.level] ?? 'INFO', (entry) => {
        if (logger.level === 'silent') return;
        // The workflow bundler reports its whole webpack summary at INFO; that is debug material.
        const noisy = entry.message.startsWith('asset workflow-bundle');
        const level = noisy || entry.level === 'TRACE' ? 'debug' : (entry.level.toLowerCase() as 'debug' | 'info' | 'warn' | 'error');
        logger[level]({ ...entry.meta, temporal: true }, entry.message);
      }),
    });
  } catch (error) {
    if (!(error instanceof Error && /already/i.test(error.message))) throw error;
  }
}
