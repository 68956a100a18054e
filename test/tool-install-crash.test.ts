import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { AuditLog } from '../entities';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { registerHost, waitFor } from './fleet';
import { createTestContext, spawnWorkerProcess, type TestContext } from './harness';
import { catalogEntry, gatedVersionFileTool, removeToolDirs, waitForToolState } from './tool-fixtures';

describe('a worker killed mid-install', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  const hosts: AgentHost[] = [];
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Install Crash Org');
  });
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const host of hosts) await host.close();
    removeToolDirs();
    await ctx?.close();
  });

  /** Starts an install on a fresh worker process, kills that worker mid-install, and waits for the outcome on a second one. */
  async function installThroughACrash(tasks: boolean) {
    const { host, serverId } = await registerHost(http, admin, { allowCommands: true, tasks });
    hosts.push(host);
    // The install holds on the host until the test opens its gate, once the worker that asked for
    // it is dead: it goes on after that worker dies, and never ends before the kill (a fixed
    // 3 s install did, once, on a loaded machine, and the first worker finished it alone).
    const spec = gatedVersionFileTool('2.0.1');
    const tool = await catalogEntry(ctx.orm, admin.organizationId, {
      ...spec,
      installCommand: `echo run >> ${spec.dir}/runs && ${spec.installCommand}`,
    });

    const first = spawnWorkerProcess(ctx);
    children.push(first);
    await http
      .post(`/api/tools/server/${serverId}/install`)
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ toolId: tool.id })
      .expect(202);
    await host.waitForCall('install_tool', (c) => c.args.name === tool.name, 30_000);
    expect(await waitForToolState(http, admin, serverId, tool.id, ['INSTALLING'])).toMatchObject({ status: 'INSTALLING' });
    if (tasks) {
      // Killed once the worker follows the task and Temporal holds the heartbeat that carries its id
      // (a condition: on a loaded machine the throttled heartbeat may take longer than a second).
      await host.waitForTaskRequest('tasks/result', undefined, 30_000);
      const install = ctx.temporal.client.workflow.getHandle(`tool-${serverId}-${tool.id}`);
      await waitFor(
        async () => (await install.describe()).raw.pendingActivities?.some((a) => (a.heartbeatDetails?.payloads?.length ?? 0) > 0),
        30_000,
        100,
      );
    }

    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    spec.openGate();
    const second = spawnWorkerProcess(ctx);
    children.push(second);

    const state = await waitForToolState(http, admin, serverId, tool.id, ['INSTALLED', 'FAILED'], 60_000);
    const calls = host.calls.filter((c) => c.args.name === tool.name).map((c) => c.tool);
    const runs = readFileSync(`${spec.dir}/runs`, 'utf8');
    const recorded = await ctx.orm.em
      .fork()
      .find(AuditLog, { organization: admin.organizationId, action: 'server.tool_installed', resourceId: serverId });
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
    return { host, tool, state, calls, runs, recorded };
  }

  it('resumes on another worker without installing twice: the retry finds the tool installed and records it', async () => {
    const { tool, state, calls, runs, recorded } = await installThroughACrash(false);
    expect(state).toMatchObject({ status: 'INSTALLED', installedVersion: '2.0.1' });
    // One install_tool ever sent, one run of the command on the host; the retry only asked.
    expect(calls).toEqual(['check_tool', 'install_tool', 'check_tool']);
    expect(runs).toBe('run\n');
    expect(recorded.map((a) => a.changes)).toEqual([
      expect.objectContaining({ toolId: tool.id, version: '2.0.1', foundDoneOnRetry: true }),
    ]);
  }, 120_000);

  it('on a task-capable host the retry follows the install task: one install_tool, one run of the command, the outcome from the task', async () => {
    const { host, tool, state, calls, runs, recorded } = await installThroughACrash(true);
    expect(state).toMatchObject({ status: 'INSTALLED', installedVersion: '2.0.1' });
    // The retry did not ask first: it followed the task, then verified as after any install.
    expect(calls).toEqual(['check_tool', 'install_tool', 'check_tool']);
    expect(runs).toBe('run\n');
    expect(host.taskRequests.filter((r) => r.method === 'tasks/result').length).toBeGreaterThanOrEqual(2);
    expect(recorded.map((a) => a.changes)).toEqual([expect.objectContaining({ toolId: tool.id, version: '2.0.1' })]);
    expect(recorded[0]!.changes).not.toHaveProperty('foundDoneOnRetry');
  }, 120_000);
});
