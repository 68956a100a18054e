/**
 * The ready MASTER of `npm run dev`, seeded on a demo server of its own organisation: ACTIVE,
 * validated, granted the demo tools whose version command really answers on this machine (git
 * does here; a program that is not installed does not), and left alone by a rerun.
 */
import { randomUUID } from 'node:crypto';
import { allowedToolsFor } from '../../domain/tools/allowed-tools';
import { createTestContext, type TestContext } from '../../test/harness';
import { catalogEntry } from '../../test/tool-fixtures';
import { Agent, AgentRole, AgentStatus, Organization, ServerTool, ServerToolStatus } from '..';
import { DEMO_AGENT_NAME, seedDemoAgent } from './demo-agent';
import { DEMO_SERVER_NAME, seedDemoServer } from './seed';

describe('seedDemoAgent', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx?.close());
  const em = () => ctx.orm.em.fork();

  async function demoOrganization(): Promise<string> {
    const fork = em();
    const organization = fork.create(Organization, { name: 'Demo', slug: `demo-${randomUUID().slice(0, 8)}` });
    await fork.flush();
    await seedDemoServer(em(), organization.id, {
      url: 'http://127.0.0.1:1/mcp',
      token: 'demo-token',
      seal: () => ({ keyId: 'k', ciphertext: 'c' }),
    });
    return organization.id;
  }

  it('creates an ACTIVE, validated MASTER granted the tools this machine has; a rerun keeps it', async () => {
    const organizationId = await demoOrganization();
    const git = await catalogEntry(
      ctx.orm,
      organizationId,
      {
        installCommand: 'true',
        uninstallCommand: 'true',
        versionCommand: 'git --version',
        versionRegex: String.raw`git version (\d+\.\d+\.\d+)`,
      },
      { name: 'git' },
    );
    await catalogEntry(
      ctx.orm,
      organizationId,
      { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'no-such-program-for-the-demo --version' },
      { name: 'jq' },
    );

    const first = await seedDemoAgent(em(), organizationId, DEMO_SERVER_NAME, 'nobody@example.test');
    // Built-in entries of the other demo tools may be in the shared test database: only git and jq are this test's.
    expect(first).toMatchObject({ agentId: expect.any(String), created: true });
    const gitFound = first.tools.find((t) => t.name === 'git');
    expect(gitFound).toEqual({ name: 'git', version: expect.stringMatching(/^\d+\.\d+\.\d+$/) });
    expect(first.tools.map((t) => t.name)).not.toContain('jq');
    const agent = await em().findOneOrFail(Agent, first.agentId!);
    expect(agent).toMatchObject({
      name: DEMO_AGENT_NAME,
      role: AgentRole.MASTER,
      status: AgentStatus.ACTIVE,
      validatedAt: expect.any(Date),
    });
    expect(await em().findOneOrFail(ServerTool, { tool: git.id })).toMatchObject({
      status: ServerToolStatus.INSTALLED,
      installedVersion: gitFound!.version,
    });
    const allowed = await allowedToolsFor(em(), agent.id);
    expect(allowed).toContainEqual({ name: 'git', allowedCommands: [], blockedCommands: [] });
    expect(allowed.map((t) => t.name)).not.toContain('jq');

    const second = await seedDemoAgent(em(), organizationId, DEMO_SERVER_NAME, 'nobody@example.test');
    expect(second).toMatchObject({ agentId: agent.id, created: false });
    expect(await em().count(Agent, { organization: organizationId })).toBe(1);
  });

  it('leaves a server that has a MASTER of its own alone', async () => {
    const organizationId = await demoOrganization();
    const fork = em();
    const agent = await seedDemoAgent(fork, organizationId, DEMO_SERVER_NAME, 'nobody@example.test');
    await fork.nativeUpdate(Agent, { id: agent.agentId }, { name: 'mine' });
    const again = await seedDemoAgent(em(), organizationId, DEMO_SERVER_NAME, 'nobody@example.test');
    expect(again.created).toBe(false);
    expect(again).not.toHaveProperty('agentId');
    expect(await em().count(Agent, { organization: organizationId })).toBe(1);
  });
});
