/**
 * The AI agent of `DEV_LOCAL_MODEL=1 npm run dev`, seeded on a demo server of its own
 * organisation: on the openai engine by its capability, waiting for the validation the dev
 * script runs (agentProvision); a rerun keeps it as it is.
 */
import { randomUUID } from 'node:crypto';
import { makeUser } from '../../test/factories';
import { createTestContext, type TestContext } from '../../test/harness';
import { Agent, AgentRole, AgentStatus, Organization } from '..';
import { ASSISTANT_AGENT_NAME, seedAssistantAgent } from './assistant-agent';
import { DEMO_SERVER_NAME, seedDemoServer } from './seed';

describe('seedAssistantAgent', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx?.close());
  const em = () => ctx.orm.em.fork();

  it('creates a WORKER on the openai engine, pending the validation the dev script starts; a rerun keeps it as it is', async () => {
    const fork = em();
    const organization = fork.create(Organization, { name: 'Demo', slug: `demo-${randomUUID().slice(0, 8)}` });
    const admin = makeUser(fork, organization);
    await fork.flush();
    await seedDemoServer(em(), organization.id, {
      url: 'http://127.0.0.1:1/mcp',
      token: 'demo-token',
      seal: () => ({ keyId: 'k', ciphertext: 'c' }),
    });

    const first = await seedAssistantAgent(em(), organization.id, DEMO_SERVER_NAME, admin.email);
    expect(first).toEqual({ agentId: expect.any(String), created: true, validatedBy: admin.id });
    const agent = await em().findOneOrFail(Agent, first.agentId, { populate: ['server'] });
    expect(agent).toMatchObject({
      name: ASSISTANT_AGENT_NAME,
      role: AgentRole.WORKER,
      status: AgentStatus.PENDING_VALIDATION,
      capabilities: ['engine:openai'],
    });
    expect(agent.server.name).toBe(DEMO_SERVER_NAME);

    await em().nativeUpdate(Agent, { id: agent.id }, { description: 'mine now' });
    expect(await seedAssistantAgent(em(), organization.id, DEMO_SERVER_NAME, admin.email)).toEqual({
      agentId: agent.id,
      created: false,
      validatedBy: admin.id,
    });
    expect((await em().findOneOrFail(Agent, agent.id)).description).toBe('mine now');
  });
});
