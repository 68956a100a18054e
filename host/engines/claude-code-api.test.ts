/**
 * An execution through the API on an agent of the claude-code engine (its `engine:claude-code`
 * capability, checked at provision_agent by running `claude --version`): the real
 * API, worker, PostgreSQL and Temporal, and a real reference host whose `claude` is the
 * stand-in of test/claude-stand-in/ (a recorded stream-json transcript in the CLI's documented
 * format; the real CLI runs in test/llm/claude-code-cli.llm.test.ts). No network beyond loopback.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { startApiServer, type ApiServer } from '../../api/server';
import { registerAccount } from '../../test/api';
import { installStandIn } from '../../test/claude-stand-in/stand-in';
import { activeAgent, parseSse, registerHost, sseText, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';
import type { AgentHost } from '../server';
import { ensureWorkspace } from '../workspaces';

describe('an execution on the claude-code engine', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let host: AgentHost | undefined;
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'claude-api-'));
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
  });
  afterAll(async () => {
    await host?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('reaches COMPLETED with the CLI output, tool calls, todos and file changes in the event log and the SSE stream', async () => {
    const standIn = await installStandIn(dir, { transcript: 'work.jsonl' });
    const http = request(api.url);
    const admin = await registerAccount(http, 'Claude Org');
    const workspaceRoot = path.join(dir, 'workspaces');
    // The host's own engine is the script one: the agent's capability chooses claude-code.
    const registered = await registerHost(http, admin, {
      workspaceRoot,
      allowCommands: true,
      env: { PATH: `${standIn.bin}:/usr/local/bin:/usr/bin:/bin`, ANTHROPIC_API_KEY: 'sk-ant-test-key' },
      // The CLI's protocol end to end; the sandbox around the CLI is claude-code.test.ts's.
      sandbox: { mode: 'off' },
    });
    host = registered.host;
    const agent = await activeAgent(http, admin, registered.serverId, { capabilities: ['engine:claude-code'] });
    expect(host.agents.get(agent.id)).toMatchObject({ engine: 'claude-code' });
    await writeFile(path.join(await ensureWorkspace(workspaceRoot, agent.id), 'notes.md'), 'draft notes\n');

    const auth = { Authorization: `Bearer ${admin.accessToken}` };
    const started = await http
      .post(`/api/agents/${agent.id}/execute`)
      .set(auth)
      .send({ prompt: 'Write hello.txt and finalise notes.md' })
      .expect(202);
    const executionId = started.body.executionId as string;
    const final = 'Done: hello.txt is written and notes.md is final.';
    const done = await waitFor(async () => {
      const res = await http.get(`/api/executions/${executionId}`).set(auth);
      return ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(res.body.status)
        ? (res.body as Record<string, unknown>)
        : undefined;
    });
    // Input and output, and the input read from and written to the prompt cache.
    expect(done).toMatchObject({ status: 'COMPLETED', output: final, tokensUsed: 1200 + 345 + 300 + 9000, error: null });
    expect((done.todos as { status: string }[]).map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);

    const [start] = await standIn.recorded();
    expect(start!.argv).toEqual(expect.arrayContaining(['--output-format', 'stream-json', '--', 'Write hello.txt and finalise notes.md']));
    expect(start!.env!.HOST_TOKEN).toBeUndefined();

    const sse = await http
      .get(`/api/executions/${executionId}/events`)
      .set(auth)
      .set('Accept', 'text/event-stream')
      .buffer(true)
      .parse(sseText);
    const events = parseSse(sse.body as string);
    expect(
      events
        .filter((e) => e.event === 'output')
        .map((e) => e.data.output)
        .join(''),
    ).toBe(`I'll look at the workspace first.\n${final}\n`);
    expect(events.filter((e) => e.event === 'tool_call').map((e) => (e.data.toolCall as { name: string }).name)).toEqual([
      'Bash',
      'Write',
      'Edit',
      'Edit',
    ]);
    expect(events.filter((e) => e.event === 'file_change').map((e) => e.data.data)).toEqual([
      { path: 'hello.txt', change: 'created' },
      { path: 'notes.md', change: 'modified' },
    ]);
    expect(events.some((e) => e.event === 'todo')).toBe(true);
    expect(events.at(-1)).toMatchObject({ event: 'status', data: { status: 'COMPLETED' } });

    const log = await http.get(`/api/executions/${executionId}/events`).query({ limit: 100 }).set(auth).expect(200);
    expect(log.body.items.map((e: { phase: string }) => e.phase)).toEqual(events.map((e) => e.event));
  });
});
