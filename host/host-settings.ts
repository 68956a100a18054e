/**
 * host/main.ts's settings, read from its environment (HOST_*) and checked, so that a wrong value
 * stops the host at start with the variable's name rather than at an agent's first run.
 */
import path from 'node:path';
import { ENGINE_NAMES, isEngineName } from './engines';
import { DEFAULT_LIMITS, defaultWorkspaceRoot } from './server';
import { DEFAULT_SANDBOX_SETTINGS, type SandboxSettings } from './sandbox-settings';

const DEFAULT_PORT = 4100;
const DEFAULT_ENGINE = 'shell';

const DEFAULT_METRICS_PORT = 9466;

function parsePort(value: string | undefined, name = 'HOST_PORT', fallback = DEFAULT_PORT): number {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${name} must be a port number, got "${value}"`);
  return port;
}

/** HOST_METRICS_PORT (0: no /metrics) and HOST_METRICS_HOST: never the MCP port, loopback unless told. */
function metricsSettings(env: NodeJS.ProcessEnv, mcpPort: number): { host: string; port: number } {
  const port = parsePort(env.HOST_METRICS_PORT, 'HOST_METRICS_PORT', DEFAULT_METRICS_PORT);
  if (port !== 0 && port === mcpPort)
    throw new Error('HOST_METRICS_PORT must differ from HOST_PORT: /metrics is never served on the MCP port');
  return { host: env.HOST_METRICS_HOST || '127.0.0.1', port };
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

function parseId(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number <= 0 || number >= 2 ** 32 - 1)
    throw new Error(`${name} must be a user or group id above 0 (not root), got "${value}"`);
  return number;
}

/** HOST_SANDBOX and the sandbox's limits, user and paths (host/sandbox.ts). */
function sandboxSettings(env: NodeJS.ProcessEnv): SandboxSettings {
  const mode = env.HOST_SANDBOX || DEFAULT_SANDBOX_SETTINGS.mode;
  if (mode !== 'bwrap' && mode !== 'off') throw new Error(`HOST_SANDBOX must be bwrap or off, got "${mode}"`);
  const bwrapPath = env.BWRAP_PATH || undefined;
  if (bwrapPath !== undefined && !path.isAbsolute(bwrapPath)) throw new Error(`BWRAP_PATH must be an absolute path, got "${bwrapPath}"`);
  const readPaths = (env.HOST_SANDBOX_READ_PATHS ?? '').split(path.delimiter).filter(Boolean);
  const relative = readPaths.find((entry) => !path.isAbsolute(entry));
  if (relative !== undefined)
    throw new Error(`HOST_SANDBOX_READ_PATHS must be absolute paths separated by ${path.delimiter}, got "${relative}"`);
  const limits = DEFAULT_SANDBOX_SETTINGS.limits;
  return {
    mode,
    ...(bwrapPath !== undefined ? { bwrapPath } : {}),
    uid: parseId('HOST_SANDBOX_UID', env.HOST_SANDBOX_UID, DEFAULT_SANDBOX_SETTINGS.uid),
    gid: parseId('HOST_SANDBOX_GID', env.HOST_SANDBOX_GID, DEFAULT_SANDBOX_SETTINGS.gid),
    limits: {
      memoryMb: parsePositiveInteger('HOST_SANDBOX_MEMORY_MB', env.HOST_SANDBOX_MEMORY_MB, limits.memoryMb),
      maxProcesses: parsePositiveInteger('HOST_SANDBOX_MAX_PROCESSES', env.HOST_SANDBOX_MAX_PROCESSES, limits.maxProcesses),
      cpuSeconds: parsePositiveInteger('HOST_SANDBOX_CPU_SECONDS', env.HOST_SANDBOX_CPU_SECONDS, limits.cpuSeconds),
      fileSizeMb: parsePositiveInteger('HOST_SANDBOX_FILE_SIZE_MB', env.HOST_SANDBOX_FILE_SIZE_MB, limits.fileSizeMb),
      tmpMb: parsePositiveInteger('HOST_SANDBOX_TMP_MB', env.HOST_SANDBOX_TMP_MB, limits.tmpMb),
    },
    readPaths,
    toolCommands: parseBoolean('HOST_SANDBOX_TOOL_COMMANDS', env.HOST_SANDBOX_TOOL_COMMANDS),
  };
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
  const port = parsePort(env.HOST_PORT);
  return {
    token,
    port,
    metrics: metricsSettings(env, port),
    host: env.HOST_BIND || '127.0.0.1',
    allowCommands: parseBoolean('HOST_ALLOW_COMMANDS', env.HOST_ALLOW_COMMANDS),
    engine,
    workspaceRoot,
    sandbox: sandboxSettings(env),
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
