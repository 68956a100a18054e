/**
 * Many gated runs at once: a tool granted with `requiresApproval` on the reference host's shell
 * engine, several runs of it side by side, every question answered as soon as it shows. The host
 * sends its todo and tool_call events just before each question, so the worker appends them
 * while the question's transaction writes the run's status and events: the moment the lock
 * order of domain/runs/row-locks.ts is about. Every run must end, with every event in its log.
 */
import { Writable } from 'node:stream';
import { createLogger } from '../lib/logger';
import { ServerToolStatus, type ToolDefinition } from '../entities';
import type { AgentExecutionPayload } from '../domain/events';
import type { AgentHost } from '../host/server';
import { httpFor, registerAccount, type Account, type Http } from './api';
import { hostWithAgent, waitFor } from './fleet';
import { createTestContext, startTestWorker, type TestContext } from './harness';
import { catalogEntry, setServerTool } from './tool-fixtures';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'];
/** Runs per host kind (task-backed and plain), all at once on one agent. */
const RUNS = 6;
/** Two headings, one gated command under each: two questions per run, each right after a todo change and a tool_call. */
const RUNBOOK = '# Check git\ngit --version\n# Check it again\ngit --version';

describe('gated runs answered concurrently', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;
  let git: ToolDefinition;
  let worker: Awaited<ReturnType<typeof startTestWorker>> | undefined;
  const hosts: AgentHost[] = [];
  /** What the worker logged at warn and above. */
  const logged: string[] = [];
  const as = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Approval Runs Org');
    git = await catalogEntry(
      ctx.orm,
      admin.organizationId,
      { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'git --version' },
      { name: 'git', category: 'vcs' },
    );
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logged.push(chunk.toString());
        done();
      },
    });
    worker = await startTestWorker({ ...ctx, logger: createLogger({ log: { ...ctx.config.log, level: 'warn' } }, 'worker', sink) });
  });
  afterAll(async () => {
    await worker?.stop();
    for (const host of hosts) await host.close();
    await ctx?.close();
  });

  async function gatedAgent(tasks: boolean) {
    const { serverId, agent } = await hostWithAgent(http, admin, hosts, { allowCommands: true, tasks, engine: 'shell' });
    await http.put(`/api/agents/${agent.id}`).set(as()).send({ maxConcurrency: RUNS }).expect(200);
    await setServerTool(ctx.orm.em.fork(), serverId, git.id, ServerToolStatus.INSTALLED);
    await http
      .put(`/api/tools/agent/${agent.id}/permissions`)
      .set(as())
      .send({ permissions: [{ toolId: git.id, canUse: true, requiresApproval: true }] })
      .expect(200);
    return agent;
  }

  const show = async (id: string) =>
    (await http.get(`/api/executions/${id}`).set(as()).expect(200)).body as {
      status: string;
      error?: string;
      pendingInput: { inputId: string } | null;
    };

  /** Approves each of the run's questions as it shows, until the run ends. */
  async function drive(id: string): Promise<{ status: string; error?: string; answered: number }> {
    const answered = new Set<string>();
    const body = await waitFor(
      async () => {
        const now = await show(id);
        if (FINAL.includes(now.status)) return now;
        const input = now.pendingInput;
        if (input && !answered.has(input.inputId)) {
          answered.add(input.inputId);
          const res = await http
            .post(`/api/executions/${id}/input`)
            .set(as())
            .send({ action: 'accept', content: { approve: true } });
          if (res.status !== 200) throw new Error(`answering ${input.inputId} gave ${res.status} ${JSON.stringify(res.body)}`);
        }
        return undefined;
      },
      180_000,
      100,
    );
    return { status: body.status, answered: answered.size, ...(body.error ? { error: body.error } : {}) };
  }

  const eventsOf = async (id: string) =>
    (await http.get(`/api/executions/${id}/events`).query({ limit: 1000 }).set(as()).expect(200)).body.items as AgentExecutionPayload[];

  /** The host's own events, as the shell engine sends them for RUNBOOK. */
  const HOST_EVENTS = [
    'todo pending,pending',
    'todo in_progress,pending',
    'tool_call',
    'tool_result',
    'todo completed,pending',
    'todo completed,in_progress',
    'tool_call',
    'tool_result',
    'todo completed,completed',
  ];

  function hostEvents(events: AgentExecutionPayload[]): string[] {
    return events
      .filter((e) => e.phase === 'todo' || e.phase === 'tool_call' || e.phase === 'tool_result')
      .map((e) => (e.phase === 'todo' ? `todo ${(e.data!.todos as { status: string }[]).map((t) => t.status).join(',')}` : e.phase));
  }

  it(`${RUNS} task-backed and ${RUNS} plain runs, every question answered at once: each run completes with its whole log, gapless and in order`, async () => {
    const agents = await Promise.all([gatedAgent(true), gatedAgent(false)]);
    const ids = await Promise.all(
      agents.flatMap((agent) =>
        Array.from(
          { length: RUNS },
          async () =>
            (await http.post(`/api/agents/${agent.id}/execute`).set(as()).send({ prompt: RUNBOOK }).expect(202)).body.executionId as string,
        ),
      ),
    );
    const outcomes = await Promise.all(ids.map(drive));
    expect(outcomes).toEqual(ids.map(() => ({ status: 'COMPLETED', answered: 2 })));

    for (const id of ids) {
      const events = await eventsOf(id);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
      expect(hostEvents(events)).toEqual(HOST_EVENTS);
      // Each tool_call is followed by its own tool_result, never the other's.
      const calls = events.filter((e) => e.phase === 'tool_call' || e.phase === 'tool_result').map((e) => e.toolCall!.toolCallId);
      expect(calls[0]).toBe(calls[1]);
      expect(calls[2]).toBe(calls[3]);
      expect(calls[0]).not.toBe(calls[2]);
      expect(events.filter((e) => e.phase === 'input_required')).toHaveLength(2);
      expect(events.filter((e) => e.phase === 'input_answered')).toHaveLength(2);
      expect(events.filter((e) => e.phase === 'progress')).toHaveLength(2);
      expect(events.at(-1)).toMatchObject({ phase: 'status', status: 'COMPLETED' });
    }
    expect(logged.filter((line) => /40P01|40001|could not record/.test(line))).toEqual([]);
  }, 240_000);
});
