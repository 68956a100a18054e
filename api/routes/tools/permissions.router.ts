import { ForbiddenError, subject } from '@casl/ability';
import type { EntityManager } from '@mikro-orm/postgresql';
import { type Agent, AgentRole, AgentToolPermission } from '../../../entities';
import { availableGrants } from '../../../domain/tools/allowed-tools';
import { setAgentPermissions } from '../../../domain/tools/permission-commands';
import type { ApiRouter } from '../../api-router';
import type { AuthContext } from '../../auth/authenticate';
import { loadAgent } from '../../loaders';
import { presentPermission } from './tools.presenters';
import { AgentParams, AgentPermissionsOut, SetPermissionsBody, SetPermissionsOut } from './permissions.schemas';

/** The subject the caller needs `action` on: the agent's permissions, in the agent's organisation. */
function permissionsOf(agent: Agent) {
  return subject('AgentToolPermission', { organization: agent.organization } as unknown as AgentToolPermission);
}

async function presentPermissions(em: EntityManager, agent: Agent) {
  const [rows, available] = await Promise.all([
    em.find(AgentToolPermission, { agent }, { populate: ['tool'], orderBy: { tool: { name: 'asc' } } }),
    availableGrants(em.fork(), agent.id),
  ]);
  return {
    agentId: agent.id,
    supervisorId: agent.supervisor?.id ?? null,
    boundedBySupervisor: Boolean(agent.supervisor) && agent.role !== AgentRole.MASTER,
    permissions: rows.map((p) => presentPermission(p, available)),
  };
}

async function loadForPermissions(em: EntityManager, auth: AuthContext, agentId: string, action: 'read' | 'update'): Promise<Agent> {
  const agent = await loadAgent(em, auth, agentId);
  ForbiddenError.from(auth.ability).throwUnlessCan(action, permissionsOf(agent));
  return agent;
}

export function toolPermissionRoutes(api: ApiRouter): void {
  const tags = ['tools'];

  api.route(
    {
      method: 'get',
      path: '/tools/agent/:agentId/permissions',
      summary: "An agent's tool permissions, each active or pending the tool's install on the agent's server",
      tags,
      request: { params: AgentParams },
      responses: { 200: { description: 'The permissions', schema: AgentPermissionsOut } },
    },
    async (ctx, { params, em, auth }) => {
      const agent = await loadForPermissions(em, auth, params.agentId, 'read');
      ctx.body = await presentPermissions(em, agent);
    },
  );

  api.route(
    {
      method: 'put',
      path: '/tools/agent/:agentId/permissions',
      summary:
        "Replace an agent's tool permissions (ADMIN, MANAGER). A subordinate never holds a tool or a command its supervisor lacks (400 naming it); " +
        'what this agent loses, its subordinates lose too, in the same transaction. A tool of the host contract is never granted (400 platform_tool)',
      tags,
      request: { params: AgentParams, body: SetPermissionsBody },
      responses: { 200: { description: 'The new permissions, and the subordinates trimmed', schema: SetPermissionsOut } },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const { agent, trimmed } = await em.transactional(async (tx) => {
        const target = await loadForPermissions(tx, auth, params.agentId, 'update');
        const change = await setAgentPermissions(tx, actor, target, body.permissions);
        return { agent: target, trimmed: change.trimmed };
      });
      ctx.body = { ...(await presentPermissions(em.fork(), agent)), trimmed };
    },
  );
}
