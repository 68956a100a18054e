import { randomUUID } from 'node:crypto';
import type { AgentHost } from '../host/server';
import { describeDeployment, promoteIfFirst, setCurrentVersion } from '../worker/deployment';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { activeAgent, hostWithAgent, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';

/**
 * A rolling upgrade with Temporal's Worker Deployment Versioning, on the dev server: a run
 * started on build `a` and waiting for a person stays pinned to `a` after `b` became current,
 * and finishes there once answered; a run started after the switch goes to `b`.
 */

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];

describe('a rolling upgrade of workers (Worker Deployment Versioning)', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  const hosts: AgentHost[] = [];
  const stops: (() => Promise<void>)[] = [];
  // Temporal splits a version string at its first dot: names without one.
  const name = `fleet-test-${randomUUID().slice(0, 8)}`;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Upgrade Org');
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });
  const namespace = () => ctx.config.temporal.namespace;
  const startBuild = async (buildId: string) => {
    const worker = await startTestWorker(ctx, undefined, { worker: { deployment: { name, buildId } } });
    stops.push(() => worker.stop());
  };
  const run = async (agentId: string, prompt: string) =>
    (await http.post(`/api/agents/${agentId}/execute`).set(as()).send({ prompt }).expect(202)).body.executionId as string;
  const show = async (id: string) =>
    (await http.get(`/api/executions/${id}`).set(as()).expect(200)).body as Record<string, unknown> & {
      status: string;
      workflowId: string;
    };
  const until = (id: string, done: (status: string) => boolean) =>
    waitFor(
      async () => {
        const body = await show(id);
        return done(body.status) && body;
      },
      60_000,
      100,
    );
  /** The build a run's workflow is pinned to, and the builds that completed its workflow tasks, from Temporal. */
  async function builds(workflowId: string): Promise<{ pinned?: string; behavior?: string; tasks: string[] }> {
    const handle = ctx.temporal.client.workflow.getHandle(workflowId);
    const info = (await handle.describe()).raw.workflowExecutionInfo?.versioningInfo;
    const history = await handle.fetchHistory();
    const tasks = (history.events ?? [])
      .map((e) => e.workflowTaskCompletedEventAttributes?.deploymentVersion?.buildId)
      .filter((b): b is string => Boolean(b));
    return { pinned: info?.deploymentVersion?.buildId ?? undefined, behavior: String(info?.behavior ?? ''), tasks };
  }

  const openRunsOn = async (buildId: string) =>
    (await ctx.temporal.client.workflow.count(`TemporalWorkerDeploymentVersion = '${name}:${buildId}' AND ExecutionStatus = 'Running'`))
      .count;

  it('keeps a run started on the old build there until it ends, while new runs go to the new build', async () => {
    await startBuild('a');
    // The first version of a deployment becomes current by itself.
    expect(await promoteIfFirst(ctx.temporal.client, namespace(), { name, buildId: 'a' }, ctx.logger)).toBe('promoted');
    const { agent, serverId } = await hostWithAgent(http, admin, hosts);
    const old = await run(agent.id, '[ask:Ship it?] done');
    await until(old, (status) => status === 'WAITING_INPUT');

    // What the operator watches before retiring a build: its open runs.
    await waitFor(async () => (await openRunsOn('a')) === 1, 30_000, 200);

    // Build b arrives: registered, but not current until the operator says so.
    await startBuild('b');
    expect(await promoteIfFirst(ctx.temporal.client, namespace(), { name, buildId: 'b' }, ctx.logger)).toBe('not-first');
    expect(await describeDeployment(ctx.temporal.client, namespace(), name)).toMatchObject({ current: 'a' });
    await setCurrentVersion(ctx.temporal.client, namespace(), { name, buildId: 'b' }, 'test operator');
    expect((await describeDeployment(ctx.temporal.client, namespace(), name)).current).toBe('b');

    // Another agent: the first one's only slot is held by the waiting run.
    const other = await activeAgent(http, admin, serverId);
    const fresh = await run(other.id, 'hello after the upgrade');
    const freshDone = await until(fresh, (status) => FINAL.includes(status));
    expect(freshDone.status).toBe('COMPLETED');
    const freshBuilds = await builds(freshDone.workflowId);
    expect(freshBuilds.pinned).toBe('b');
    expect(new Set(freshBuilds.tasks)).toEqual(new Set(['b']));

    await http
      .post(`/api/executions/${old}/input`)
      .set(as())
      .send({ action: 'accept', content: { answer: 'yes' } })
      .expect(200);
    const oldDone = await until(old, (status) => FINAL.includes(status));
    expect(oldDone.status).toBe('COMPLETED');
    const oldBuilds = await builds(oldDone.workflowId);
    expect(oldBuilds.pinned).toBe('a');
    expect(oldBuilds.behavior).toMatch(/PINNED|1/);
    // Every workflow task of the old run, after the switch included, ran on build a.
    expect(new Set(oldBuilds.tasks)).toEqual(new Set(['a']));
    // Drained: nothing runs on a any more, so its workers can stop (docs/operations.md).
    await waitFor(async () => (await openRunsOn('a')) === 0, 30_000, 200);
  }, 180_000);
});
