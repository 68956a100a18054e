import path from 'node:path';
import { z } from 'zod';
import { loginLimitsSchema, rateLimitsSchema, type LoginLimits, type RateLimits } from './request-limits';
import { loadTracingConfig as readTracingConfig, TracingConfigError, type TracingConfig } from './tracing-config';
import { defaultBuildId } from './build-id';
import { DATABASE_OUTAGE_GRACE_MS } from './database-unavailable';
import { encryptionKeysSchema, loadOrCreateDevSecrets, placeholderSecretProblems, secretSchema } from './config-secrets';

export type { TracingConfig };

/**
 * The one place that reads the environment. Every variable is documented in README.md
 * (Configuration); keep the two in step.
 */

export const PROJECT_ROOT = path.resolve(__dirname, '..', __dirname.includes(`${path.sep}dist${path.sep}`) ? '..' : '');

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  DATA_DIR: optionalString,
  HOST: optionalString,
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_PRETTY: optionalString.pipe(z.enum(['true', 'false']).optional()),
  // Colour in pretty logs: LOG_COLOR wins (npm run dev sets it for its children, whose output is
  // a pipe), then the common FORCE_COLOR and NO_COLOR, then whether stdout is a terminal.
  LOG_COLOR: optionalString.pipe(z.enum(['true', 'false']).optional()),
  FORCE_COLOR: z.string().optional(),
  NO_COLOR: z.string().optional(),
  TRUST_PROXY: optionalString.pipe(z.enum(['true', 'false']).optional()),
  // off: this worker starts no webhook deliveries from the outbox (another worker does).
  WEBHOOK_OUTBOX: optionalString.pipe(z.enum(['on', 'off']).optional()),
  BODY_LIMIT: z
    .string()
    .regex(/^\d+(b|kb|mb)$/i, 'like 1mb or 512kb')
    .default('1mb'),

  DATABASE_URL: optionalString.pipe(z.url({ protocol: /^postgres(ql)?$/ }).optional()),
  EMBEDDED_POSTGRES_PORT: z.coerce.number().int().min(1).max(65535).default(5433),
  DB_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  // How long a run waits for an unavailable PostgreSQL (lib/database-unavailable.ts): 1 s to 1 h.
  DATABASE_OUTAGE_GRACE_MS: z.coerce.number().int().min(1000).max(3_600_000).default(DATABASE_OUTAGE_GRACE_MS),

  // Delegation (docs/host-protocol.md, "The fleet argument"): the MCP endpoint's URL as the hosts
  // reach it (default http://127.0.0.1:<PORT>/mcp), and how many children one run may have running.
  FLEET_MCP_URL: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  DELEGATION_MAX_CHILDREN: z.coerce.number().int().min(1).max(100).default(5),

  TEMPORAL_ADDRESS: optionalString,
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('mcp-fleet'),
  TEMPORAL_DEV_PORT: z.coerce.number().int().min(1).max(65535).default(7233),
  TEMPORAL_UI_PORT: z.coerce.number().int().min(1).max(65535).default(8233),
  TEMPORAL_CLI_PATH: optionalString,
  // The bubblewrap binary npm run dev hands its local agent host (dev/bwrap.ts finds or unpacks one otherwise).
  BWRAP_PATH: optionalString,
  WORKER_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  WORKFLOW_BUNDLE_PATH: optionalString,
  WORKER_MAX_CONCURRENT_ACTIVITIES: z.coerce.number().int().min(1).max(10_000).default(500),
  WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().min(0).max(100_000).default(1000),
  // Worker Deployment Versioning (docs/operations.md, "Upgrading workers"): off unless a deployment is named.
  WORKER_DEPLOYMENT_NAME: optionalString.pipe(
    z
      .string()
      .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, - and _ only (Temporal splits versions at the dot)')
      .optional(),
  ),
  WORKER_BUILD_ID: optionalString,

  // How long a run's question (an input request) waits for a person's answer; a run may set its own.
  // At most 14 days: the column is a 32-bit integer of ms.
  // Prometheus /metrics, each process on its own port (never the API's), loopback unless told; 0 turns it off.
  METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9465),
  WORKER_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  // The Temporal SDK serves its own worker metrics (Rust core) on a port of its own, next to the block.
  WORKER_TEMPORAL_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9467),

  INPUT_TIMEOUT_MS: z.coerce
    .number()
    .int()
    .min(1_000)
    .max(14 * 24 * 3600_000)
    .default(24 * 3600_000),

  // Recurring tasks, for every organisation: the closest two occurrences of a cron may be (at
  // most a day: domain/tasks/schedule-spec.ts), and how many enabled ones an organisation keeps.
  TASK_MIN_INTERVAL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  TASK_MAX_RECURRING: z.coerce.number().int().min(1).max(1_000_000).default(1000),

  MCP_TIMEOUT_MS: z.coerce.number().int().min(100).max(300_000).default(10_000),
  SERVER_DEGRADED_LATENCY_MS: z.coerce.number().int().min(1).default(2_000),
  SERVER_HEALTH_INTERVAL_SECONDS: z.coerce.number().int().min(10).default(300),
  SERVER_HEALTH_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(5),
  // The run-reconcile schedule (worker/schedules.ts): how often it looks for runs whose workflow
  // was terminated or timed out, and how far back it looks (at least a few intervals, so a worker
  // fleet down for a while still finds them when it is back).
  RUN_RECONCILE_INTERVAL_SECONDS: z.coerce.number().int().min(10).max(3600).default(60),
  RUN_RECONCILE_LOOKBACK_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(86_400),
  SERVER_URL_ALLOWLIST: optionalString,
  SERVER_URL_DENYLIST: optionalString,

  JWT_ACCESS_SECRET: optionalString.pipe(secretSchema.optional()),
  JWT_REFRESH_SECRET: optionalString.pipe(secretSchema.optional()),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).default(900),
  REFRESH_TOKEN_TTL_SECONDS: z.coerce
    .number()
    .int()
    .min(60)
    .default(30 * 24 * 3600),
  BCRYPT_COST: z.coerce.number().int().min(4).max(15).default(12),
  RATE_LIMITS: optionalString.pipe(rateLimitsSchema),
  LOGIN_LIMITS: optionalString.pipe(loginLimitsSchema),
  ENCRYPTION_KEYS: optionalString.pipe(encryptionKeysSchema),
});

export interface EncryptionKey {
  id: string;
  key: Buffer;
}

export interface Config {
  env: 'development' | 'test' | 'production';
  isProduction: boolean;
  dataDir: string;
  /** trustProxy: take the client IP from X-Forwarded-For (only behind a reverse proxy you run). */
  http: { host: string; port: number; bodyLimit: string; trustProxy: boolean };
  /** `color`: ANSI colours in pretty output, for a terminal only (see logColor). */
  log: { level: string; pretty: boolean; color: boolean };
  /** outageGraceMs: how long a run's writes wait for an unavailable PostgreSQL (docs/operations.md, "PostgreSQL unavailable"). */
  database: { url?: string; embeddedPort: number; poolMax: number; outageGraceMs: number };
  temporal: {
    address?: string;
    namespace: string;
    taskQueue: string;
    devPort: number;
    uiPort: number;
    cliPath?: string;
    workflowBundlePath?: string;
  };
  /** outbox: whether this worker starts the webhook deliveries written with events (WEBHOOK_OUTBOX, default on). */
  webhooks: { outbox: boolean };
  /** Executions are I/O-bound MCP calls: one worker runs many at once; the workflow cache bounds memory. */
  /**
   * `deployment`: the Worker Deployment this worker is a version of (WORKER_DEPLOYMENT_NAME, with
   * WORKER_BUILD_ID or the package version and commit); absent, the worker is unversioned.
   */
  worker: {
    shutdownGraceMs: number;
    maxConcurrentActivities: number;
    maxCachedWorkflows: number;
    deployment?: { name: string; buildId: string };
  };
  mcp: {
    timeoutMs: number;
    degradedLatencyMs: number;
    healthIntervalSeconds: number;
    healthConcurrency: number;
    /** Raw host/CIDR lists; lib/ssrf.ts parses them (refusing bad entries at start). */
    urlAllowlist?: string;
    urlDenylist?: string;
  };
  auth: {
    accessSecret: string;
    refreshSecret: string;
    accessTokenTtlSeconds: number;
    refreshTokenTtlSeconds: number;
    bcryptCost: number;
    /** The login throttle's limits, shared by every API instance through PostgreSQL. */
    loginLimits: LoginLimits;
  };
  /** Key ring: the first key encrypts, any key decrypts by its id. */
  encryptionKeys: EncryptionKey[];
  /** Per-IP, per-user and per-login request limits, shared by every API instance through PostgreSQL. */
  rateLimits: RateLimits;
  /** Where each process serves Prometheus `/metrics` (lib/metrics.ts); port 0: not served. */
  metrics: { api: MetricsEndpoint; worker: MetricsEndpoint & { temporalPort: number } };
  /**
   * `inputTimeoutMs`: how long a run's input request waits for an answer unless the run sets its own.
   * `reconcile`: the run-reconcile schedule's interval and look-back (workflows/run-reconcile.workflow.ts).
   */
  executions: { inputTimeoutMs: number; reconcile: { intervalSeconds: number; lookbackSeconds: number } };
  /**
   * Delegation: `mcpUrl`, the MCP endpoint sent to runs whose agent has subordinates (the
   * `fleet` argument of execute_prompt); `maxChildren`, the children one run may have running.
   */
  delegation: { mcpUrl: string; maxChildren: number };
  /** Limits on recurring tasks, the same for every organisation (domain/tasks/task-limits.ts). */
  tasks: TaskLimits;
  /** `bwrapPath`: the bubblewrap binary for the local agent host's sandbox (dev and tests). */
  sandbox: { bwrapPath?: string };
  /** OpenTelemetry traces, from the standard OTEL_* variables (lib/tracing.ts). */
  tracing: TracingConfig;
}

export interface MetricsEndpoint {
  host: string;
  port: number;
}

export interface TaskLimits {
  /** The least time between two occurrences of a recurring task's cron, in its zone. */
  minIntervalSeconds: number;
  /** Enabled RECURRING tasks one organisation may have. */
  maxRecurringPerOrganization: number;
}

/** The OTEL_* variables (lib/tracing-config.ts, which the agent host shares), failing as the rest of the configuration does. */
export function loadTracingConfig(env: NodeJS.ProcessEnv = process.env): TracingConfig {
  try {
    return readTracingConfig(env);
  } catch (error) {
    if (error instanceof TracingConfigError) throw new ConfigError(error.problems);
    throw error;
  }
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/**
 * Whether pretty logs are coloured. Escape codes in a file or a pipe are noise, so only a
 * terminal gets them, unless told otherwise: FORCE_COLOR as Node reads it ('', 1, 2, 3 or
 * true colour; anything else does not), NO_COLOR when not empty (no-color.org).
 */
function logColor(e: { LOG_COLOR?: string; FORCE_COLOR?: string; NO_COLOR?: string }): boolean {
  if (e.LOG_COLOR) return e.LOG_COLOR === 'true';
  if (e.FORCE_COLOR !== undefined) return ['', '1', '2', '3', 'true'].includes(e.FORCE_COLOR);
  if (e.NO_COLOR) return false;
  return process.stdout.isTTY === true;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'env'}: ${i.message}`));
  }
  const e = parsed.data;
  const tracing = loadTracingConfig(env);
  const isProduction = e.NODE_ENV === 'production';
  const dataDir = path.resolve(PROJECT_ROOT, e.DATA_DIR ?? '.data');

  let accessSecret = e.JWT_ACCESS_SECRET;
  let refreshSecret = e.JWT_REFRESH_SECRET;
  let encryptionKeys = e.ENCRYPTION_KEYS;
  const problems: string[] = [];

  if (isProduction) {
    if (!accessSecret) problems.push('JWT_ACCESS_SECRET is required in production');
    if (!refreshSecret) problems.push('JWT_REFRESH_SECRET is required in production');
    if (!encryptionKeys) problems.push('ENCRYPTION_KEYS is required in production');
    if (!e.DATABASE_URL) problems.push('DATABASE_URL is required in production');
    if (!e.TEMPORAL_ADDRESS) problems.push('TEMPORAL_ADDRESS is required in production');
    problems.push(
      ...placeholderSecretProblems([
        ['JWT_ACCESS_SECRET', accessSecret],
        ['JWT_REFRESH_SECRET', refreshSecret],
      ]),
    );
  } else if (!accessSecret || !refreshSecret || !encryptionKeys) {
    const dev = loadOrCreateDevSecrets(dataDir);
    accessSecret ??= dev.JWT_ACCESS_SECRET;
    refreshSecret ??= dev.JWT_REFRESH_SECRET;
    encryptionKeys ??= envSchema.shape.ENCRYPTION_KEYS.parse(dev.ENCRYPTION_KEYS);
  }
  if (accessSecret && accessSecret === refreshSecret) {
    problems.push('JWT_ACCESS_SECRET and JWT_REFRESH_SECRET must differ');
  }
  if (encryptionKeys && new Set(encryptionKeys.map((k) => k.id)).size !== encryptionKeys.length) {
    problems.push('ENCRYPTION_KEYS has duplicate key ids');
  }
  if (e.METRICS_PORT !== 0 && e.METRICS_PORT === e.PORT)
    problems.push('METRICS_PORT must differ from PORT: /metrics is never served on the API port');
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    env: e.NODE_ENV,
    isProduction,
    dataDir,
    http: {
      host: e.HOST ?? (isProduction ? '0.0.0.0' : '127.0.0.1'),
      port: e.PORT,
      bodyLimit: e.BODY_LIMIT,
      trustProxy: e.TRUST_PROXY === 'true',
    },
    log: {
      level: e.LOG_LEVEL,
      pretty: e.LOG_PRETTY ? e.LOG_PRETTY === 'true' : !isProduction && process.stdout.isTTY === true,
      color: logColor(e),
    },
    database: {
      url: e.DATABASE_URL,
      embeddedPort: e.EMBEDDED_POSTGRES_PORT,
      poolMax: e.DB_POOL_MAX,
      outageGraceMs: e.DATABASE_OUTAGE_GRACE_MS,
    },
    webhooks: { outbox: e.WEBHOOK_OUTBOX !== 'off' },
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TEMPORAL_TASK_QUEUE,
      devPort: e.TEMPORAL_DEV_PORT,
      uiPort: e.TEMPORAL_UI_PORT,
      cliPath: e.TEMPORAL_CLI_PATH,
      workflowBundlePath: e.WORKFLOW_BUNDLE_PATH,
    },
    worker: {
      shutdownGraceMs: e.WORKER_SHUTDOWN_GRACE_MS,
      maxConcurrentActivities: e.WORKER_MAX_CONCURRENT_ACTIVITIES,
      maxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS,
      deployment: e.WORKER_DEPLOYMENT_NAME
        ? { name: e.WORKER_DEPLOYMENT_NAME, buildId: e.WORKER_BUILD_ID ?? defaultBuildId(env) }
        : undefined,
    },
    mcp: {
      timeoutMs: e.MCP_TIMEOUT_MS,
      degradedLatencyMs: e.SERVER_DEGRADED_LATENCY_MS,
      healthIntervalSeconds: e.SERVER_HEALTH_INTERVAL_SECONDS,
      healthConcurrency: e.SERVER_HEALTH_CONCURRENCY,
      urlAllowlist: e.SERVER_URL_ALLOWLIST,
      urlDenylist: e.SERVER_URL_DENYLIST,
    },
    auth: {
      accessSecret: accessSecret!,
      refreshSecret: refreshSecret!,
      accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
      refreshTokenTtlSeconds: e.REFRESH_TOKEN_TTL_SECONDS,
      bcryptCost: e.BCRYPT_COST,
      loginLimits: e.LOGIN_LIMITS,
    },
    encryptionKeys: encryptionKeys!,
    rateLimits: e.RATE_LIMITS,
    metrics: {
      api: { host: e.METRICS_HOST, port: e.METRICS_PORT },
      worker: { host: e.WORKER_METRICS_HOST, port: e.WORKER_METRICS_PORT, temporalPort: e.WORKER_TEMPORAL_METRICS_PORT },
    },
    executions: {
      inputTimeoutMs: e.INPUT_TIMEOUT_MS,
      reconcile: { intervalSeconds: e.RUN_RECONCILE_INTERVAL_SECONDS, lookbackSeconds: e.RUN_RECONCILE_LOOKBACK_SECONDS },
    },
    delegation: { mcpUrl: e.FLEET_MCP_URL ?? `http://127.0.0.1:${e.PORT}/mcp`, maxChildren: e.DELEGATION_MAX_CHILDREN },
    tasks: { minIntervalSeconds: e.TASK_MIN_INTERVAL_SECONDS, maxRecurringPerOrganization: e.TASK_MAX_RECURRING },
    sandbox: { bwrapPath: e.BWRAP_PATH },
    tracing,
  };
}
