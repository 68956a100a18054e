import { ApplicationFailure } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, AuditLog, McpServer, ServerStatus, type ToolSnapshotEntry } from '../entities';
import { setAgentStatus } from '../domain/runs/agent-status';
import { publishEvent } from '../domain/events';
import { diffTools, toolsHash } from '../domain/servers/tools-snapshot';
import { HOST_TOOLS } from '../lib/host-contract';
import type { ServerCheckReason, ServerCheckResult } from '../workflows/contracts/server-check';
import type { ActivityDeps } from './deps';
import { ServerCallFailed, serverGateway } from './server-gateway';

interface Probe {
  latencyMs: number;
  serverInfo: { name: string; version: string } | null;
  protocolVersion: string | null;
  transport: 'streamable-http' | 'sse';
  tools: ToolSnapshotEntry[];
}

/** Agents follow their server: ERROR while it is OFFLINE, back to ACTIVE when it answers again. */
async function followServerStatus(em: EntityManager, serverId: string, status: ServerStatus, reason: string | null): Promise<void> {
  const agents = await em.find(
    Agent,
    { server: serverId, status: status === ServerStatus.OFFLINE ? AgentStatus.ACTIVE : AgentStatus.ERROR },
    { fields: ['id'] },
  );
  for (const agent of agents) {
    if (status === ServerStatus.OFFLINE)
      await setAgentStatus(em, agent.id, AgentStatus.ERROR, `server offline: ${reason ?? 'unreachable'}`, [AgentStatus.ACTIVE]);
    else await setAgentStatus(em, agent.id, AgentStatus.ACTIVE, 'server reachable again', [AgentStatus.ERROR]);
  }
}

export function createServerActivities(deps: ActivityDeps) {
  const { orm, config, logger } = deps;
  const gateway = serverGateway(deps);

  /** initialize (when the pooled connection is new) + ping + tools/list, timed. */
  function probe(server: McpServer): Promise<Probe> {
    return gateway.withServer(server, async ({ connection, since }) => {
      await connection.client.ping({ timeout: config.mcp.timeoutMs });
      const listed = await connection.client.listTools(undefined, { timeout: config.mcp.timeoutMs });
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

  return {
    /**
     * Connection test / health check of one server, recorded on its row: status, latency,
     * server info, tools snapshot (with change detection), and a `server:status` event when the
     * status changed. The gateway decrypts the master token; it never leaves there.
     */
    async checkServer(serverId: string, reason: ServerCheckReason): Promise<ServerCheckResult> {
      const em = orm.em.fork();
      const server = await em.findOne(McpServer, serverId, { populate: ['masterTokenCiphertext'] });
      if (!server) throw ApplicationFailure.nonRetryable(`server ${serverId} does not exist`, 'ServerNotFound');
      const checkedAt = new Date();
      let result: ServerCheckResult;
      let snapshot: ToolSnapshotEntry[] | undefined;
      try {
        const found = await probe(server);
        snapshot = found.tools;
        const names = found.tools.map((t) => t.name);
        const missingHostTools = HOST_TOOLS.filter((t) => !names.includes(t));
        const slow = found.latencyMs > config.mcp.degradedLatencyMs;
        result = {
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
      } catch (error) {
        if (!(error instanceof ServerCallFailed)) throw error;
        result = {
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
        };
      }

      const previousStatus = server.status;
      server.status = ServerStatus[result.status];
      server.lastCheckAt = checkedAt;
      server.lastLatencyMs = result.latencyMs ?? undefined;
      server.lastError = result.error;
      if (result.ok) {
        server.serverInfo = result.serverInfo ?? undefined;
        server.protocolVersion = result.protocolVersion ?? undefined;
      }
      if (snapshot) {
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
          logger.warn({ serverId, ...diff }, 'MCP server changed its tools');
        }
        server.toolsSnapshot = snapshot;
        server.toolsHash = hash;
      }
      await em.flush();
      if (previousStatus !== server.status) {
        await publishEvent(em, {
          type: 'server:status',
          organizationId: server.organization.id,
          serverId,
          status: server.status,
          previousStatus,
          reason: result.error ?? null,
          at: checkedAt.toISOString(),
        });
      }
      await followServerStatus(em, server.id, server.status, result.error ?? null);
      logger.debug({ serverId, reason, status: result.status, latencyMs: result.latencyMs }, 'server checked');
      return result;
    },

    /** Every server of every organisation, for the scheduled health check. */
    async listServerIds(): Promise<string[]> {
      const rows = await orm.em.fork().find(McpServer, {}, { fields: ['id'], orderBy: { createdAt: 'asc' } });
      return rows.map((r) => r.id);
    },
  };
}
