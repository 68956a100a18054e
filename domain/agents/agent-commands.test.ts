import { Agent, AgentRole, AuditLog } from '../../entities';
import { makeAgent, makeOrganization, makeServer } from '../../test/factories';
import { createTestContext, type TestContext } from '../../test/harness';
import type { Actor } from '../actor';
import { createAgent, deleteAgent, updateAgent } from './agent-commands';

describe('agent commands, called without a request', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx?.close());

  it('create, change and delete agents for a workflow actor, with the same rules and audit as the API', async () => {
    const em = ctx.orm.em.fork();
    const organization = makeOrganization(em);
    const server = makeServer(em, organization);
    const lead = makeAgent(em, server, AgentRole.SUPERVISOR);
    await em.flush();
    const actor: Actor = { organizationId: organization.id, via: 'workflow' };

    const agent = await createAgent(em, actor, {
      server,
      name: 'nightly',
      role: AgentRole.WORKER,
      supervisorId: lead.id,
      capabilities: ['git', 'git'],
      maxConcurrency: 2,
    });
    expect(agent).toMatchObject({ displayName: 'nightly', capabilities: ['git'], supervisor: lead, createdBy: undefined });
    const created = await ctx.orm.em.fork().findOneOrFail(AuditLog, { resourceId: agent.id, action: 'agent.create' });
    expect([created.actor ?? null, created.changes]).toEqual([
      null,
      { name: 'nightly', role: 'WORKER', serverId: server.id, supervisorId: lead.id },
    ]);

    await expect(updateAgent(em, actor, lead, { supervisorId: agent.id })).rejects.toMatchObject({ status: 409, code: 'supervisor_cycle' });
    await expect(
      createAgent(em, actor, { server, name: 'nightly', role: AgentRole.WORKER, capabilities: [], maxConcurrency: 1 }),
    ).rejects.toMatchObject({ status: 409, code: 'name_taken' });

    const helper = await createAgent(em, actor, {
      server,
      name: 'helper',
      role: AgentRole.WORKER,
      supervisorId: agent.id,
      capabilities: [],
      maxConcurrency: 1,
    });
    await em.transactional(async (tx) => deleteAgent(tx, actor, await tx.findOneOrFail(Agent, agent.id)));
    expect((await ctx.orm.em.fork().findOneOrFail(Agent, helper.id)).supervisor?.id).toBe(lead.id);
  });
});
