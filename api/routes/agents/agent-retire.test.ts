/**
 * Deleting an agent retires it from its host: the agentRetire workflow sends the real
 * reference host deactivate_agent with removeWorkspace, retries while the host is down, and
 * records the outcome as an `agent.retire` audit row. The DELETE never waits for the host.
 */
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { WorkflowNotFoundError } from '@temporalio/client';
import { AuditLog, ServerToolStatus } from '../../../entities';
import { startAgentHost, type AgentHost } from '../../../host/server';
import { workspacePath } from '../../../host/workspaces';
import { startAgentRetire } from '../../../domain/temporal';
import { httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { activeAgent, registerHost, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { catalogEntry, setServerTool } from '../../../test/tool-fixtures';
import { agentRetireWorkflowId, type RetireResult } from '../../../workflows/contracts/agent-retire';

const gone = (dir: string) =>
  access(dir).then(
    () => false,
    () => true,
  );

describe('retiring a deleted agent from its server', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let workspaceRoot: string;
  const hosts: AgentHost[] = [];
  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  async function host(options: Parameters<typeof registerHost>[2] = {}) {
    const registered = await registerHost(http, admin, { workspaceRoot, ...options });
    hosts.push(registered.host);
    return registered;
  }
  const retireHandle = (agentId: string) => ctx.temporal.client.workflow.getHandle(agentRetireWorkflowId(agentId));
  const retireResult = (agentId: string) => retireHandle(agentId).result() as Promise<RetireResult>;
  const retireAudit = (agentId: string) => ctx.orm.em.fork().find(AuditLog, { action: 'agent.retire', resourceId: agentId });

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Agent Retire Org');
    workspaceRoot = await mkdtemp(path.join(os.tmpdir(), 'agent-retire-'));
  });
  afterAll(async () => {
    await worker?.stop();
    await Promise.all(hosts.map((h) => h.close()));
    await ctx?.close();
    if (workspaceRoot) await rm(workspaceRoot, { recursive: true, force: true });
  });

  it('sends deactivate_agent with removeWorkspace: the workspace a run filled is gone, and the outcome is audited', async () => {
    const { host: shellHost, serverId } = await host({ engine: 'shell', allowCommands: true });
    const git = await catalogEntry(
      ctx.orm,
      admin.organizationId,
      { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'git --version' },
      { name: 'git', category: 'vcs' },
    );
    await setServerTool(ctx.orm.em.fork(), serverId, git.id, ServerToolStatus.INSTALLED);
    const agent = await activeAgent(http, admin, serverId, { capabilities: ['engine:shell'] });
    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(as(admin))
      .send({ permissions: [{ toolId: git.id, canUse: true }] })
      .expect(200);
    const { executionId } = (
      await http.post(`/api/agents/${agent.id}/execute`).set(as(admin)).send({ prompt: 'git init --quiet' }).expect(202)
    ).body;
    await waitFor(async () => (await http.get(`/api/executions/${executionId}`).set(as(admin))).body.status === 'COMPLETED');
    const workspace = workspacePath(workspaceRoot, agent.id);
    await expect(access(path.join(workspace, '.git', 'HEAD'))).resolves.toBeUndefined();

    await http.delete(`/api/agents/${agent.id}`).set(as(admin)).expect(204);

    expect(await retireResult(agent.id)).toEqual({ removed: true });
    expect(shellHost.calls.filter((c) => c.tool === 'deactivate_agent').map((c) => c.args)).toEqual([
      { agentId: agent.id, removeWorkspace: true },
    ]);
    expect(await gone(workspace)).toBe(true);
    const rows = await retireAudit(agent.id);
    expect(rows.map((row) => ({ resourceType: row.resourceType, actor: row.actor ?? null, changes: row.changes }))).toEqual([
      { resourceType: 'agent', actor: null, changes: { name: agent.name, server: serverId, removed: true } },
    ]);
    // The deletion itself keeps its own row, with who asked.
    expect(await ctx.orm.em.fork().count(AuditLog, { action: 'agent.delete', resourceId: agent.id, actor: admin.userId })).toBe(1);
  });

  it('answers 204 while the host is down, keeps retrying, and retires the agent once the host is back', async () => {
    const { host: down, serverId } = await host();
    const agent = await activeAgent(http, admin, serverId);
    const workspace = workspacePath(workspaceRoot, agent.id);
    await writeFile(path.join(workspace, 'notes.txt'), 'left by a run');
    await down.close();

    const started = Date.now();
    await http.delete(`/api/agents/${agent.id}`).set(as(admin)).expect(204);
    // Not waiting for the host, which retries forever; the bound leaves a loaded machine room.
    expect(Date.now() - started).toBeLessThan(30_000);

    // Still running after failed attempts: an unreachable host is waited for, not a verdict.
    const retrying = await waitFor(async () => {
      const description = await retireHandle(agent.id).describe();
      const attempt = description.raw.pendingActivities?.[0]?.attempt ?? 0;
      return description.status.name === 'RUNNING' && attempt >= 2 ? description : undefined;
    });
    expect(retrying.raw.pendingActivities?.[0]?.lastFailure?.message).toBeTruthy();
    expect(await retireAudit(agent.id)).toEqual([]);
    expect(await gone(workspace)).toBe(false);

    // The same host comes back on its address (the registry of agents is lost, the disk is not).
    const back = await startAgentHost({ token: down.token, port: down.port, workspaceRoot, stepDelayMs: 5 });
    hosts.push(back);
    expect(await retireResult(agent.id)).toEqual({ removed: true });
    expect(back.calls.filter((c) => c.tool === 'deactivate_agent').map((c) => c.args)).toEqual([
      { agentId: agent.id, removeWorkspace: true },
    ]);
    expect(await gone(workspace)).toBe(true);
    expect((await retireAudit(agent.id)).map((row) => row.changes)).toEqual([{ name: agent.name, server: serverId, removed: true }]);
  });

  it('ends with the reason when the server refuses, without retrying', async () => {
    const root = await mkdtemp(path.join(os.tmpdir(), 'agent-retire-refuse-'));
    const { host: refusing, serverId } = await host({ workspaceRoot: root });
    const agent = await activeAgent(http, admin, serverId);
    // A workspace root that became a file: the host cannot remove the workspace and says so.
    await rm(root, { recursive: true, force: true });
    await writeFile(root, 'not a directory');
    try {
      await http.delete(`/api/agents/${agent.id}`).set(as(admin)).expect(204);
      const result = await retireResult(agent.id);
      expect(result).toEqual({ removed: false, error: expect.stringMatching(/^the server refused deactivate_agent: .*ENOTDIR/) });
      expect(refusing.calls.filter((c) => c.tool === 'deactivate_agent')).toHaveLength(1);
      expect((await retireAudit(agent.id)).map((row) => row.changes)).toEqual([
        { name: agent.name, server: serverId, removed: false, error: result.error },
      ]);
    } finally {
      await rm(root, { force: true });
    }
  });

  it('ends with the reason when the server is deleted while it is unreachable', async () => {
    const { host: down, serverId } = await host();
    const agent = await activeAgent(http, admin, serverId);
    await down.close();
    await http.delete(`/api/agents/${agent.id}`).set(as(admin)).expect(204);
    await http.delete(`/api/servers/${serverId}`).set(as(admin)).expect(204);

    const result = await retireResult(agent.id);
    expect(result).toEqual({ removed: false, error: 'the server no longer exists' });
    expect((await retireAudit(agent.id)).map((row) => row.changes)).toEqual([
      { name: agent.name, server: serverId, removed: false, error: 'the server no longer exists' },
    ]);
  });

  it('sends nothing for an agent never validated: nothing of it is on the server', async () => {
    const { host: quiet, serverId } = await host();
    const created = (await http.post('/api/agents').set(as(admin)).send({ serverId, name: 'never-validated' }).expect(201)).body;
    expect(created.status).toBe('PENDING_VALIDATION');
    await http.delete(`/api/agents/${created.id}`).set(as(admin)).expect(204);

    await expect(retireHandle(created.id).describe()).rejects.toBeInstanceOf(WorkflowNotFoundError);
    expect(quiet.calls.filter((c) => c.tool === 'deactivate_agent')).toEqual([]);
    expect(await retireAudit(created.id)).toEqual([]);
  });

  it('keeps the deletion when the workflow cannot be started', async () => {
    const { serverId } = await host();
    const agent = await activeAgent(http, admin, serverId);
    // A retirement already running under the agent's id: Temporal refuses the second start.
    await startAgentRetire(ctx.temporal, { agentId: agent.id, agentName: agent.name, serverId, organizationId: admin.organizationId });

    await http.delete(`/api/agents/${agent.id}`).set(as(admin)).expect(204);
    await http.get(`/api/agents/${agent.id}`).set(as(admin)).expect(404);
    expect(await retireResult(agent.id)).toEqual({ removed: true });
  });
});
