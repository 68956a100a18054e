/**
 * Permissions at run time, end to end: the API, a real worker and a real reference host that
 * runs real commands. An agent without `git` cannot run git through the host; one granted it
 * can, within its commands.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { ServerToolStatus, type ToolDefinition } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import { workspacePath } from '../../../host/workspaces';
import { httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { activeAgent, registerHost, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { catalogEntry, setServerTool } from '../../../test/tool-fixtures';

describe('tool permissions at run time', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  let git: ToolDefinition;
  const em = () => ctx.orm.em.fork();
  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Enforcement Org');
    ({ host, serverId } = await registerHost(http, admin, { allowCommands: true }));
    // The organisation's own entry named git (hosts match tools by name): a built-in `git`
    // written here would change what the seed test finds in the shared database.
    git = await catalogEntry(
      ctx.orm,
      admin.organizationId,
      { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'git --version' },
      { name: 'git', category: 'vcs' },
    );
  });
  afterAll(async () => {
    await worker?.stop();
    await host?.close();
    await ctx?.close();
  });

  async function run(agentId: string, prompt: string) {
    const { executionId } = (await http.post(`/api/agents/${agentId}/execute`).set(as(admin)).send({ prompt }).expect(202)).body;
    const done = await waitFor(async () => {
      const res = await http.get(`/api/executions/${executionId}`).set(as(admin));
      return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(res.body.status) ? res.body : undefined;
    });
    const events = (await http.get(`/api/executions/${executionId}/events`).set(as(admin)).expect(200)).body.items as {
      phase: string;
      output?: string;
      toolCall?: Record<string, unknown>;
    }[];
    const call = host.calls.find((c) => c.tool === 'execute_prompt' && c.args.executionId === executionId)!;
    return { done, events, allowedTools: call.args.allowedTools };
  }

  it('refuses git to an agent not granted it: a tool_result error, a FAILED run, nothing run', async () => {
    const agent = await activeAgent(http, admin, serverId);
    const { done, events, allowedTools } = await run(agent.id, '[run:git --version]');
    expect(allowedTools).toEqual([]);
    expect(done).toMatchObject({ status: 'FAILED', error: expect.stringContaining("git is not among the agent's allowed tools") });
    expect(events.filter((e) => e.phase === 'tool_result')).toEqual([
      expect.objectContaining({
        toolCall: expect.objectContaining({ name: 'git', result: { error: expect.stringContaining('refused') } }),
      }),
    ]);
    expect(events.some((e) => e.output?.includes('git version'))).toBe(false);
  });

  it('sends a grant only once the tool is installed, then runs git for the agent, within its commands', async () => {
    const agent = await activeAgent(http, admin, serverId);
    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(as(admin))
      .send({ permissions: [{ toolId: git.id, canUse: true, blockedCommands: ['push'] }] })
      .expect(200);
    // Granted but not on the server yet: pending, so the host still refuses.
    const pending = await run(agent.id, '[run:git --version]');
    expect(pending.allowedTools).toEqual([]);
    expect(pending.done.status).toBe('FAILED');

    await setServerTool(em(), serverId, git.id, ServerToolStatus.INSTALLED);
    const granted = await run(agent.id, 'checked [run:git --version]');
    expect(granted.allowedTools).toEqual([{ name: 'git', allowedCommands: [], blockedCommands: ['push'] }]);
    expect(granted.done).toMatchObject({ status: 'COMPLETED', output: expect.stringMatching(/^git version \d+\.\d+.*checked$/s) });
    expect(granted.events.map((e) => e.phase)).toEqual(expect.arrayContaining(['tool_call', 'output', 'tool_result']));

    const blocked = await run(agent.id, '[run:git push origin main]');
    expect(blocked.done).toMatchObject({
      status: 'FAILED',
      error: expect.stringContaining('"git push origin main" is blocked for this agent'),
    });
  });

  it('reads a git command after git’s global options: config and ls-remote stay blocked behind -c and -C, an alias is refused, nothing runs', async () => {
    const agent = await activeAgent(http, admin, serverId);
    await setServerTool(em(), serverId, git.id, ServerToolStatus.INSTALLED);
    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(as(admin))
      .send({ permissions: [{ toolId: git.id, canUse: true, blockedCommands: ['config', 'ls-remote', 'push'] }] })
      .expect(200);
    const workspace = workspacePath(host.workspaceRoot, agent.id);
    expect((await run(agent.id, '[run:git init --quiet]')).done.status).toBe('COMPLETED');

    const configured = await run(agent.id, '[run:git -c a.b=c config --global alias.zz "!touch alias-ran"]');
    const alias = await run(agent.id, '[run:git zz]');
    const uploadPack = await run(agent.id, '[run:git -C . ls-remote --upload-pack="touch upload-pack-ran" .]');
    const exists = (file: string) =>
      access(path.join(workspace, file)).then(
        () => true,
        () => false,
      );
    expect(await exists('alias-ran')).toBe(false);
    expect(await exists('upload-pack-ran')).toBe(false);
    expect(configured.done).toMatchObject({
      status: 'FAILED',
      error: expect.stringContaining(
        '"git -c a.b=c config --global alias.zz !touch alias-ran" is blocked for this agent (blocked command "config")',
      ),
    });
    expect(alias.done).toMatchObject({
      status: 'FAILED',
      error: expect.stringContaining('"git zz" is refused: zz is not one of git’s own commands'),
    });
    expect(uploadPack.done).toMatchObject({
      status: 'FAILED',
      error: expect.stringContaining(
        '"git -C . ls-remote --upload-pack=touch upload-pack-ran ." is blocked for this agent (blocked command "ls-remote")',
      ),
    });
  });
});
