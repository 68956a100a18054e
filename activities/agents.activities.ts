import { ApplicationFailure } from '@temporalio/activity';
import { Agent, AgentStatus, Organization, User } from '../entities';
import { setAgentStatus } from '../domain/runs/agent-status';
import { hostToolCall } from '../lib/host-contract';
import { toolResultText } from '../lib/mcp-client';
import { recordAudit } from '../domain/audit';
import type { ProvisionResult } from '../workflows/contracts/agent-provision';
import type { AgentRetireInput, RetireResult } from '../workflows/contracts/agent-retire';
import { recordWebhookEvent } from '../domain/webhooks/outbox';
import { DatabaseWait } from './database-wait';
import type { ActivityDeps } from './deps';
import { ServerCallFailed, serverGateway } from './server-gateway';

export function createAgentActivities(deps: ActivityDeps) {
  const { orm, config } = deps;
  const gateway = serverGateway(deps);
  const timeout = { timeout: config.mcp.timeoutMs };
  return {
    /** `provision_agent` then `activate_agent` on the agent's server; a refusal is a result, not a throw. */
    async provisionAgent(agentId: string): Promise<ProvisionResult> {
      // An unavailable PostgreSQL is waited for before the server hears of anything (DatabaseWait).
      const agent = await new DatabaseWait(config.database.outageGraceMs).run(
        () => orm.em.fork().findOne(Agent, agentId, { populate: ['server', 'server.masterTokenCiphertext'] }),
        'before the agent could be validated; its server was not contacted',
      );
      if (!agent) throw ApplicationFailure.nonRetryable(`agent ${agentId} does not exist`, 'AgentNotFound');
      const provision = hostToolCall('provision_agent', {
        agentId,
        name: agent.name,
        role: agent.role,
        capabilities: agent.capabilities,
        ...(agent.supervisor ? { supervisorId: agent.supervisor.id } : {}),
      });
      try {
        return await gateway.withServer(agent.server, async ({ connection: { client } }): Promise<ProvisionResult> => {
          const provisioned = await client.callTool(provision, undefined, timeout);
          if (provisioned.isError)
            return { ok: false, error: `the server refused provision_agent: ${toolResultText(provisioned.content) || 'no details'}` };
          const activated = await client.callTool(hostToolCall('activate_agent', { agentId }), undefined, timeout);
          if (activated.isError)
            return { ok: false, error: `the server refused activate_agent: ${toolResultText(activated.content) || 'no details'}` };
          return { ok: true };
        });
      } catch (error) {
        if (error instanceof ServerCallFailed) return { ok: false, error: error.message };
        throw error;
      }
    },

    /**
     * ACTIVE with who validated it, or still PENDING_VALIDATION with the server's error. Waits
     * for an unavailable PostgreSQL (DatabaseWait), each try from a fresh unit of work: writing
     * the same fields again and moving the agent only from PENDING_VALIDATION or INACTIVE make a
     * try after a commit whose answer was lost harmless.
     */
    async recordProvision(agentId: string, result: ProvisionResult, validatedBy: string): Promise<void> {
      await new DatabaseWait(config.database.outageGraceMs).run(
        async () => {
          const em = orm.em.fork();
          const agent = await em.findOne(Agent, agentId);
          if (!agent) return;
          if (result.ok) {
            agent.validatedAt = new Date();
            agent.validatedBy = em.getReference(User, validatedBy);
            agent.lastError = undefined;
            await em.flush();
            await setAgentStatus(em, agentId, AgentStatus.ACTIVE, 'validated', [AgentStatus.PENDING_VALIDATION, AgentStatus.INACTIVE]);
          } else {
            agent.lastError = result.error;
            await em.flush();
          }
        },
        `to record the validation (${result.ok ? 'the server accepted the agent' : 'the server refused it'}); the agent's status was not changed`,
      );
    },

    /**
     * `deactivate_agent` with `removeWorkspace: true` on the deleted agent's server. A server
     * that cannot be reached throws, so Temporal retries; a refusal or a server deleted since
     * is the result.
     */
    async retireAgent(input: AgentRetireInput): Promise<RetireResult> {
      const args = hostToolCall('deactivate_agent', { agentId: input.agentId, removeWorkspace: true });
      try {
        return await gateway.withServer(input.serverId, async ({ connection: { client } }): Promise<RetireResult> => {
          const answer = await client.callTool(args, undefined, timeout);
          if (answer.isError)
            return { removed: false, error: `the server refused deactivate_agent: ${toolResultText(answer.content) || 'no details'}` };
          return { removed: true };
        });
      } catch (error) {
        if (error instanceof ApplicationFailure && error.type === 'ServerNotFound')
          return { removed: false, error: 'the server no longer exists' };
        throw error;
      }
    },

    /** The `agent.retire` audit row: no person acts here, the deletion that asked for it was audited with its actor. */
    async recordRetire(input: AgentRetireInput, result: RetireResult): Promise<void> {
      const em = orm.em.fork();
      // An organisation deleted meanwhile took its audit log with it.
      if (!(await em.count(Organization, input.organizationId))) return;
      recordAudit(em, {
        organizationId: input.organizationId,
        action: 'agent.retire',
        resourceType: 'agent',
        resourceId: input.agentId,
        changes: {
          name: input.agentName,
          server: input.serverId,
          removed: result.removed,
          ...(result.error ? { error: result.error } : {}),
        },
      });
      await em.flush();
      // The workspace may still be on the host: someone has to look.
      if (!result.removed)
        await recordWebhookEvent(em, {
          id: `agent.retire_failed:${input.agentId}`,
          type: 'agent.retire_failed',
          organizationId: input.organizationId,
          at: new Date(),
          data: {
            agentId: input.agentId,
            serverId: input.serverId,
            status: 'RETIRE_FAILED',
            reason: result.error ?? null,
            link: `/api/servers/${input.serverId}`,
          },
        });
    },
  };
}
