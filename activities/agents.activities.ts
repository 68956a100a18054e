import { ApplicationFailure } from '@temporalio/activity';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, User } from '../entities';
import { setAgentStatus } from '../domain/runs/agent-status';
import { openSecret } from '../lib/crypto';
import { describeMcpError, toolResultText } from '../lib/mcp-client';
import { masterTokenContext } from '../domain/servers/master-token';
import { urlPolicy } from '../lib/url-policy';
import { assertSafeUrl } from '../lib/ssrf';
import type { ProvisionResult } from '../workflows/agent-provision.workflow';
import type { ActivityDeps } from './deps';


export function createAgentActivities(deps: ActivityDeps) {
  const { orm, config } = deps;
  const policy = urlPolicy(config);
  return {
    /** `provision_agent` then `activate_agent` on the agent's server; a refusal is a result, not a throw. */
    async provisionAgent(agentId: string): Promise<ProvisionResult> {
      const em = orm.em.fork() as EntityManager;
      const agent = await em.findOne(Agent, agentId, { populate: ['server', 'server.masterTokenCiphertext'] });
      if (!agent) throw ApplicationFailure.nonRetryable(`agent ${agentId} does not exist`, 'AgentNotFound');
      const server = agent.server;
      try {
        await assertSafeUrl(server.url, policy);
        const token = openSecret(config.encryptionKeys, { keyId: server.masterTokenKeyId, ciphertext: server.masterTokenCiphertext }, masterTokenContext(server.id));
        return await deps.mcp.withConnection({ serverId: server.id, url: server.url, transport: server.transport, token }, async ({ client }) => {
          const provisioned = await client.callTool(
            { name: 'provision_agent', arguments: { agentId, name: agent.name, role: agent.role, capabilities: agent.capabilities, ...(agent.supervisor ? { supervisorId: agent.supervisor.id } : {}) } },
            undefined,
            { timeout: config.mcp.timeoutMs },
          );
          if (provisioned.isError) return { ok: false, error: `the server refused provision_agent: ${toolResultText(provisioned.content) || 'no details'}` };
          const activated = await client.callTool({ name: 'activate_agent', arguments: { agentId } }, undefined, { timeout: config.mcp.timeoutMs });
          if (activated.isError) return { ok: false, error: `the server refused activate_agent: ${toolResultText(activated.content) || 'no details'}` };
          return { ok: true };
        });
      } catch (error) {
        return { ok: false, error: describeMcpError(error, server.url, config.mcp.timeoutMs).message };
      }
    },

    /** ACTIVE with who validated it, or still PENDING_VALIDATION with the server's error. */
    async recordProvision(agentId: string, result: ProvisionResult, validatedBy: string): Promise<void> {
      const em = orm.em.fork() as EntityManager;
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
  };
}
