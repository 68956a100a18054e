import { ApplicationFailure } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, AuditLog, McpServer, ServerStatus, type ToolSnapshotEntry } from '../entities';
import { setAgentStatus } from '../domain/runs/agent-status';
import { publishEvent } from '../domain/events';
import { diffTools, toolsHash } from '../domain/servers/tools-snapshot';
import { HOST_TOOLS } from '../lib/host-contract';
import type { ServerCheckReason, ServerCheckResult } from '../workflows/contracts/server-check';
import type { ActivityDeps } from './deps';
import { DatabaseWait } from './database-wait';
import { ServerCallFailed, serverGateway, type ServerGateway } from './server-gateway';

/** What the server activities use: the database, the MCP timeouts, the log, and the way to a server. */
type ServerDeps = Pick<ActivityDeps, 'orm' | 'config' | 'logger'> & { gateway: ServerGateway };

interface Probe {
  latencyMs: number;
  serverInfo: { name: string; version: string } | null;
  protocolVersion: string | null;
  transport: 'streamable-http' | 'sse';
  tools: ToolSnapshotEntry[];
}

/** What a check found: the result, and the tools snapshot when the server answered. */
interface CheckFinding {
  result: ServerCheckResult;
  snapshot?: ToolSnapshotEntry[];
}

/** The agents that follow the server to `status`: the ACTIVE ones when it is OFFLINE, else the ERROR ones. */
async function followersOf(em: EntityManager, serverId: string, status: ServerStatus): Promise<string[]> {
  const agents = await em.find(
    Agent,
    { server: serverId, status: status === ServerStatus.OFFLINE ? AgentStatus.ACTIVE : AgentStatus.ERROR },
    { fields: ['id'] },
  );
  return agents.map((agent) => agent.id);
}

/** Agents follow their server: ERROR while it is OFFLINE, back to ACTIVE when it answers again. */
async function followServerStatus(em: EntityManager, agentIds: string[], status: ServerStatus, reason: string | null): Promise<void> {
  for (const agentId of agentIds) {
    if (status === ServerStatus.OFFLINE)
      await setAgentStatus(em, agentId, AgentStatus.ERROR, `server offline: ${reason ?? 'unreachable'}`, [AgentStatus.ACTIVE]);
    else await setAgentStatus(em, agentId, AgentStatus.ACTIVE, 'server reachable again', [AgentStatus.ERROR]);
  }
}

/**
 * initialize (when the pooled connection is new) + ping + tools/list, timed. ping and tools/list
 * go out together: a person waits for the check, and neither answer depends on the other.
 */
function probe({ config, gateway }: ServerDeps, server: McpServer): Promise<Probe> {
  return gateway.withServer(server, async ({ connection, since }) => {
    const [, listed] = await Promise.all([
      connection.client.ping({ timeout: config.mcp.timeoutMs }),
      connection.client.listTools(undefined, { timeout: config.mcp.timeoutMs }),
    ]);
    const latencyMs = Math.round(performance.now() - since);
    const info = connection.serverInfo;
    return {
      latencyMs,
      serverInfo: info ? { name: info.name, version: info.version } : null,
      protocolVersion: connection.protocolVersion ?? null,
      transport: connection.transport,
      tools: listed.tools.map((t) => ({
        name: t.name,
        description: t.description,
        inputSchema: t.inputSchema,
        ...(t._meta ? { meta: t._meta } : {}),
      })),
    };
  });
}

/** Probes the server: ONLINE, DEGRADED (slow, or lacking host tools) or, when it cannot be reached, OFFLINE. */
async function probeServer(deps: ServerDeps, serverId: string, server: McpServer, checkedAt: Date): Promise<CheckFinding> {
  const { config } = deps;
  try {
    const found = await probe(deps, server);
    const names = found.tools.map((t) => t.name);
    const missingHostTools = HOST_TOOLS.filter((t) => !names.includes(t));
    const slow = found.latencyMs > config.mcp.degradedLatencyMs;
    const result: ServerCheckResult = {
      serverId,
      ok: true,
      status: slow || missingHostTools.length > 0 ? 'DEGRADED' : 'ONLINE',
      latencyMs: found.latencyMs,
      serverInfo: found.serverInfo,
      protocolVersion: found.protocolVersion,
      transport: found.transport,
      tools: names,
      missingHostTools,
      checkedAt: checkedAt.toISOString(),
    };
    if (slow) result.error = `slower than ${config.mcp.degradedLatencyMs} ms (${found.latencyMs} ms)`;
    else if (missingHostTools.length) result.error = `lacks host tools: ${missingHostTools.join(', ')}`;
    return { result, snapshot: found.tools };
  } catch (error) {
    if (!(error instanceof ServerCallFailed)) throw error;
    return {
      result: {
        serverId,
        ok: false,
        status: 'OFFLINE',
        latencyMs: null,
        serverInfo: null,
        protocolVersion: null,
        transport: null,
        tools: [],
        missingHostTools: [...HOST_TOOLS],
        error: error.message,
        checkedAt: checkedAt.toISOString(),
      },
    };
  }
}

/** Keeps the tools snapshot; a change since the last one is noted on the result and the row, audited and logged. */
function recordToolsSnapshot(
  em: EntityManager,
  logger: ServerDeps['logger'],
  server: McpServer,
  { result, snapshot }: Required<CheckFinding>,
  checkedAt: Date,
): void {
  const hash = toolsHash(snapshot);
  if (server.toolsHash && server.toolsHash !== hash) {
    const diff = diffTools(server.toolsSnapshot ?? [], snapshot);
    result.toolsChanged = diff;
    server.lastToolsChange = { at: checkedAt.toISOString(), ...diff };
    em.create(AuditLog, {
      organization: server.organization,
      action: 'server.tools_changed',
      resourceType: 'server',
      resourceId: server.id,
      changes: { ...diff, previousHash: server.toolsHash, hash },
    });
    logger.warn({ serverId: result.serverId, ...diff }, 'MCP server changed its tools');
  }
  server.toolsSnapshot = snapshot;
  server.toolsHash = hash;
}

/** Writes the check on the server's row; answers the status the row had before. */
async function recordCheck(
  em: EntityManager,
  logger: ServerDeps['logger'],
  server: McpServer,
  { result, snapshot }: CheckFinding,
  checkedAt: Date,
): Promise<ServerStatus> {
  const previousStatus = server.status;
  server.status = ServerStatus[result.status];
  server.lastCheckAt = checkedAt;
  server.lastLatencyMs = result.latencyMs ?? undefined;
  server.lastError = result.error;
  if (result.ok) {
    server.serverInfo = result.serverInfo ?? undefined;
    server.protocolVersion = result.protocolVersion ?? undefined;
  }
  if (snapshot) recordToolsSnapshot(em, logger, server, { result, snapshot }, checkedAt);
  await em.flush();
  return previousStatus;
}

/**
 * Records a check: the row, a `server:status` event when the status moved from `previousStatus`
 * (what the row said before the probe), the agents following. Safe to run again after a
 * failure that followed its commit: the row gets the same values, the tools change is audited
 * only while the stored hash differs, each agent moves only from the status it is expected in,
 * and a repeated `server:status` says the same thing again (its webhook event is keyed).
 */
async function recordFinding(
  { orm, logger }: ServerDeps,
  em: EntityManager,
  server: McpServer,
  previousStatus: ServerStatus,
  finding: CheckFinding,
  checkedAt: Date,
): Promise<void> {
  const { result } = finding;
  // The agents to move are looked up while the check is written (each move re-checks the
  // agent's status under its lock): one round trip less before the person gets the answer.
  const [, followers] = await Promise.all([
    recordCheck(em, logger, server, finding, checkedAt),
    followersOf(orm.em.fork(), server.id, ServerStatus[result.status]),
  ]);
  if (previousStatus !== server.status) {
    await publishEvent(em, {
      type: 'server:status',
      organizationId: server.organization.id,
      serverId: server.id,
      status: server.status,
      previousStatus,
      reason: result.error ?? null,
      at: checkedAt.toISOString(),
    });
  }
  await followServerStatus(em, followers, server.status, result.error ?? null);
}

function serverNotFound(serverId: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, 'ServerNotFound');
}

/**
 * The checkServer activity: the probe, recorded on the row, a `server:status` event on a
 * change, the agents following. Its reads and writes wait for an unavailable PostgreSQL
 * (DatabaseWait); the probe is never repeated for that.
 */
async function checkServer(deps: ServerDeps, serverId: string, reason: ServerCheckReason): Promise<ServerCheckResult> {
  const { orm, logger, config } = deps;
  const db = new DatabaseWait(config.database.outageGraceMs);
  const em = orm.em.fork();
  const server = await db.run(
    () => em.findOne(McpServer, serverId, { populate: ['masterTokenCiphertext'] }),
    'before the server could be checked; it was not contacted',
  );
  if (!server) throw serverNotFound(serverId);
  const previousStatus = server.status;
  const checkedAt = new Date();
  const finding = await probeServer(deps, serverId, server, checkedAt);
  const { result } = finding;
  let tries = 0;
  await db.run(async () => {
    // A try after a failed one starts from a fresh unit of work and the row as it is now.
    if (tries++ === 0) return recordFinding(deps, em, server, previousStatus, finding, checkedAt);
    const again = orm.em.fork();
    const row = await again.findOne(McpServer, serverId);
    if (!row) throw serverNotFound(serverId);
    return recordFinding(deps, again, row, previousStatus, finding, checkedAt);
  }, `to record the check (the server answered ${result.status}); it was not recorded`);
  logger.debug({ serverId, reason, status: result.status, latencyMs: result.latencyMs }, 'server checked');
  return result;
}

/** The listServerIds activity. */
async function listServerIds(em: EntityManager): Promise<string[]> {
  const rows = await em.find(McpServer, {}, { fields: ['id'], orderBy: { createdAt: 'asc' } });
  return rows.map((r) => r.id);
}

export function createServerActivities(deps: ActivityDeps) {
  const { orm, config, logger } = deps;
  const serverDeps: ServerDeps = { orm, config, logger, gateway: serverGateway(deps) };

  return {
    /**
     * Connection test / health check of one server, recorded on its row: status, latency,
     * server info, tools snapshot (with change detection), and a `server:status` event when the
     * status changed. The gateway decrypts the master token; it never leaves there.
     */
    checkServer(serverId: string, reason: ServerCheckReason): Promise<ServerCheckResult> {
      return checkServer(serverDeps, serverId, reason);
    },

    /** Every server of every organisation, for the scheduled health check. */
    listServerIds(): Promise<string[]> {
      return new DatabaseWait(config.database.outageGraceMs).run(
        () => listServerIds(orm.em.fork()),
        'to list the servers; none was checked',
      );
    },
  };
}
