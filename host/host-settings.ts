/**
 * host/main.ts's settings, read from its environment (HOST_*) and checked, so that a wrong value
 * stops the host at start with the variable's name rather than at an agent's first run.
 */
import path from 'node:path';
import { ENGINE_NAMES, isEngineName } from './engines';
import { DEFAULT_LIMITS, defaultWorkspaceRoot } from './server';

const DEFAULT_PORT = 4100;
const DEFAULT_ENGINE = 'shell';

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`HOST_PORT must be a port number, got "${value}"`);
  return port;
}

function parseBoolean(name: string, value: string | undefined): boolean {
  if (value === undefined || value === '' || value === 'false') return false;
  if (value === 'true') return true;
  throw new Error(`${name} must be true or false, got "${value}"`);
}

function parsePositiveInteger(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number <= 0) throw new Error(`${name} must be a whole number above 0, got "${value}"`);
  return number;
}

/** The host's settings from its environment, or an error naming the variable that is wrong. */
export function hostSettings(env: NodeJS.ProcessEnv) {
  const token = env.HOST_TOKEN;
  if (!token) throw new Error('HOST_TOKEN is required (the bearer token clients must send)');
  const engine = env.HOST_ENGINE || DEFAULT_ENGINE;
  if (!isEngineName(engine)) throw new Error(`HOST_ENGINE must be one of ${ENGINE_NAMES.join(', ')}, got "${engine}"`);
  const workspaceRoot = env.HOST_WORKSPACE_ROOT || defaultWorkspaceRoot();
  if (!path.isAbsolute(workspaceRoot)) throw new Error(`HOST_WORKSPACE_ROOT must be an absolute path, got "${workspaceRoot}"`);
  const dataDir = env.HOST_DATA_DIR || undefined;
  if (dataDir !== undefined && !path.isAbsolute(dataDir)) throw new Error(`HOST_DATA_DIR must be an absolute path, got "${dataDir}"`);
  return {
    token,
    port: parsePort(env.HOST_PORT),
    host: env.HOST_BIND || '127.0.0.1',
    allowCommands: parseBoolean('HOST_ALLOW_COMMANDS', env.HOST_ALLOW_COMMANDS),
    engine,
    workspaceRoot,
    limits: {
      wallTimeMs: parsePositiveInteger('HOST_RUN_WALL_TIME_MS', env.HOST_RUN_WALL_TIME_MS, DEFAULT_LIMITS.wallTimeMs),
      outputBytes: parsePositiveInteger('HOST_RUN_OUTPUT_BYTES', env.HOST_RUN_OUTPUT_BYTES, DEFAULT_LIMITS.outputBytes),
    },
    // Tasks kept across restarts; unset, a restart forgets them (clients then see them as unknown).
    ...(dataDir !== undefined ? { dataDir } : {}),
    // Unset: the host's default (DEFAULT_INPUT_TIMEOUT_MS, a day).
    ...(env.HOST_INPUT_TIMEOUT_MS ? { inputTimeoutMs: parsePositiveInteger('HOST_INPUT_TIMEOUT_MS', env.HOST_INPUT_TIMEOUT_MS, 1) } : {}),
  };
}
