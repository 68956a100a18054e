import { randomUUID } from 'node:crypto';
import { Agent, AgentRole, AgentStatus, Execution, ExecutionStatus } from '../../entities';
import { makeAgent, makeExecution, makeOrganization, makeServer } from '../../test/factories';
import { createTestContext, type TestContext } from '../../test/harness';
import { DelegationRefused, recordDelegatedRun } from './delegation';

/**
 * The parent's local activity behind `delegate`: what a worker lost mid-delegation replays. The
 * Update's id keys the child, so a second call (the replayed handler, or the activity tried
 * again after its answer was lost) answers the same child and writes nothing more.
 */
describe('recording a delegated run', () => {
  let ctx: TestContext;
  let master: Agent;
  let worker: Agent;
  let stranger: Agent;
  const em = () => ctx.orm.em.fork();

  beforeAll(async () => {
    ctx = await createTestContext();
    const setup = em();
    const server = makeServer(setup, makeOrganization(setup, 'Delegation Org'));
    master = makeAgent(setup, server, AgentRole.MASTER);
    worker = makeAgent(setup, server, AgentRole.WORKER, master);
    stranger = makeAgent(setup, server, AgentRole.WORKER);
    for (const agent of [master, worker, stranger]) Object.assign(agent, { status: AgentStatus.ACTIVE, maxConcurrency: 10 });
    await setup.flush();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  async function parentRun(): Promise<Execution> {
    const setup = em();
    const parent = makeExecution(setup, await setup.findOneOrFail(Agent, master.id));
    await setup.flush();
    return parent;
  }

  const input = (parentExecutionId: string, extra: Partial<Parameters<typeof recordDelegatedRun>[1]> = {}) => ({
    parentExecutionId,
    childExecutionId: randomUUID(),
    delegationKey: `delegate-${randomUUID()}`,
    agentId: worker.id,
    prompt: 'part one',
    maxChildren: 5,
    ...extra,
  });

  it('writes one child per Update id, however often it is called', async () => {
    const parent = await parentRun();
    const first = input(parent.id);
    const answers = await Promise.all([
      recordDelegatedRun(em(), first),
      recordDelegatedRun(em(), first),
      // A retry with another id chosen for the child still finds the one written.
      recordDelegatedRun(em(), { ...first, childExecutionId: randomUUID() }),
    ]);
    expect(new Set(answers.map((a) => a.executionId))).toEqual(new Set([first.childExecutionId]));
    const children = await em().find(Execution, { parentExecution: parent.id });
    expect(children.map((c) => [c.id, c.depth, c.trigger, c.agent?.id])).toEqual([[first.childExecutionId, 1, 'delegation', worker.id]]);
    // Another Update is another child.
    const second = await recordDelegatedRun(em(), input(parent.id));
    expect(second.executionId).not.toBe(first.childExecutionId);
  });

  it('refuses a non-subordinate, an ended parent, depth past 3 and the fan-out limit, with the reason', async () => {
    const parent = await parentRun();
    await expect(recordDelegatedRun(em(), input(parent.id, { agentId: stranger.id }))).rejects.toThrow(/not a direct subordinate/);
    await expect(recordDelegatedRun(em(), input(parent.id, { agentId: randomUUID() }))).rejects.toBeInstanceOf(DelegationRefused);

    await recordDelegatedRun(em(), input(parent.id, { maxChildren: 1 }));
    await expect(recordDelegatedRun(em(), input(parent.id, { maxChildren: 1 }))).rejects.toThrow(
      /fan-out limit.*1 children running \(at most 1/,
    );

    const deep = await parentRun();
    await em().nativeUpdate(Execution, { id: deep.id }, { depth: 3 });
    await expect(recordDelegatedRun(em(), input(deep.id))).rejects.toThrow(/depth limit.*3 delegations deep \(at most 3\)/);

    const ended = await parentRun();
    await em().nativeUpdate(Execution, { id: ended.id }, { status: ExecutionStatus.COMPLETED });
    await expect(recordDelegatedRun(em(), input(ended.id))).rejects.toThrow(/has ended \(COMPLETED\)/);
  });
});
