/**
 * The shell engine end to end: the API, a real worker and a real reference host on the shell
 * engine that runs real commands (git from this machine's PATH; nothing leaves loopback). An
 * execution of a runbook reaches COMPLETED with the commands' real output in its event log and
 * on its SSE stream.
 */
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ServerToolStatus } from '../../../entities';
import type { AgentHost } from '../../../host/server';
import { workspacePath } from '../../../host/workspaces';
import { httpFor, registerAccount, type Account, type Http } from '../../../test/api';
import { activeAgent, parseSse, registerHost, sseText, waitFor } from '../../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../../test/harness';
import { catalogEntry, setServerTool } from '../../../test/tool-fixtures';

describe('an execution on the shell engine', () => {
  let ctx: TestContext;
  let http: Http;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let host: AgentHost;
  let serverId: string;
  let workspaceRoot: string;
  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Shell Engine Org');
    workspaceRoot = await mkdtemp(path.join(os.tmpdir(), 'shell-e2e-'));
    ({ host, serverId } = await registerHost(http, admin, { engine: 'shell', allowCommands: true, workspaceRoot }));
  });
  afterAll(async () => {
    await worker?.stop();
    await host?.close();
    await ctx?.close();
    if (workspaceRoot) await rm(workspaceRoot, { recursive: true, force: true });
  });

  it('runs a runbook of real commands to COMPLETED, their output in the event log and the SSE stream', async () => {
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
    expect(host.agents.get(agent.id)).toMatchObject({ engine: 'shell' });

    const prompt = '# Check the toolchain\ngit --version\n# Make a repository\ngit init --quiet\ngit rev-parse --is-inside-work-tree';
    const { executionId } = (await http.post(`/api/agents/${agent.id}/execute`).set(as(admin)).send({ prompt }).expect(202)).body;
    const done = await waitFor(async () => {
      const res = await http.get(`/api/executions/${executionId}`).set(as(admin));
      return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(res.body.status) ? res.body : undefined;
    });
    expect(done).toMatchObject({
      status: 'COMPLETED',
      output: expect.stringMatching(/^git version \d+\.\d+[^\n]*\ntrue\n$/),
      error: null,
      tokensUsed: null,
    });
    expect(done.todos).toEqual([
      { id: 'item-1', content: 'Check the toolchain', status: 'completed' },
      { id: 'item-2', content: 'Make a repository', status: 'completed' },
    ]);
    // What the runbook did is really there: the repository it made, in the agent's workspace.
    await expect(access(path.join(workspacePath(workspaceRoot, agent.id), '.git', 'HEAD'))).resolves.toBeUndefined();

    const events = (await http.get(`/api/executions/${executionId}/events`).set(as(admin)).expect(200)).body.items as {
      phase: string;
      output?: string;
      toolCall?: { name: string; arguments?: { command: string }; result?: { exitCode: number } };
    }[];
    expect(events.filter((e) => e.phase === 'tool_call').map((e) => e.toolCall!.arguments!.command)).toEqual([
      'git --version',
      'git init --quiet',
      'git rev-parse --is-inside-work-tree',
    ]);
    expect(events.filter((e) => e.phase === 'tool_result').map((e) => e.toolCall!.result!.exitCode)).toEqual([0, 0, 0]);
    expect(
      events
        .filter((e) => e.phase === 'output')
        .map((e) => e.output)
        .join(''),
    ).toBe(done.output);

    const sse = await http
      .get(`/api/executions/${executionId}/events`)
      .set(as(admin))
      .set('Accept', 'text/event-stream')
      .buffer(true)
      .parse(sseText);
    const streamed = parseSse(sse.body as string);
    expect(streamed.map((e) => e.event)).toEqual(events.map((e) => e.phase));
    expect(
      streamed
        .filter((e) => e.event === 'output')
        .map((e) => e.data.output)
        .join(''),
    ).toBe(done.output);
  });

  it('an agent whose engine cannot run on its host stays PENDING_VALIDATION with the reason', async () => {
    const noCommands = await registerHost(http, admin, { engine: 'script', allowCommands: false, workspaceRoot });
    try {
      const created = await http
        .post('/api/agents')
        .set(as(admin))
        .send({ serverId: noCommands.serverId, name: 'runbook', capabilities: ['engine:shell'] })
        .expect(201);
      const res = await http.post(`/api/agents/${created.body.id}/validate`).set(as(admin)).expect(502);
      expect(res.body.error.code).toBe('provision_failed');
      const agent = (await http.get(`/api/agents/${created.body.id}`).set(as(admin)).expect(200)).body;
      expect(agent).toMatchObject({
        status: 'PENDING_VALIDATION',
        lastError: expect.stringContaining('the shell engine cannot run agents on this host: HOST_ALLOW_COMMANDS is off'),
      });
    } finally {
      await noCommands.host.close();
    }
  });
});
