/**
 * End to end through the API: an execution on an agent whose host runs the openai engine,
 * against an OpenAI-compatible stand-in started by this test on a loopback port (no internet;
 * it replays completions in the documented Chat Completions streaming format, see
 * test/openai-stand-in.ts). The model's streamed text reaches the event log and the SSE stream
 * as it was streamed, and its tool call really writes into the agent's workspace.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { startApiServer, type ApiServer } from '../../api/server';
import { registerAccount, type Account } from '../../test/api';
import { activeAgent, parseSse, registerHost, sseText, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../../test/harness';
import {
  chunk,
  startOpenAIStandIn,
  streamed,
  textChunks,
  toolCallChunks,
  usageChunk,
  type OpenAIStandIn,
} from '../../test/openai-stand-in';
import { workspacePath } from '../workspaces';

describe('an execution on the openai engine', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: ReturnType<typeof request>;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let admin: Account;
  let standIn: OpenAIStandIn;
  let workspaceRoot: string;
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'OpenAI Engine Org');
    standIn = await startOpenAIStandIn();
    workspaceRoot = await mkdtemp(path.join(os.tmpdir(), 'openai-e2e-'));
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await standIn?.close();
    await api?.close();
    await worker?.stop();
    await ctx?.close();
    if (workspaceRoot) await rm(workspaceRoot, { recursive: true, force: true });
  });

  const as = (account: Account) => ({ Authorization: `Bearer ${account.accessToken}` });

  it("reaches COMPLETED with the model's streamed output in the event log and the SSE stream", async () => {
    // The host's own engine is the script engine: the agent's engine:openai capability chooses openai.
    const { host, serverId } = await registerHost(http, admin, {
      allowCommands: true,
      workspaceRoot,
      env: { HOST_OPENAI_BASE_URL: standIn.baseUrl, HOST_OPENAI_API_KEY: 'sk-e2e-secret', HOST_OPENAI_MODEL: 'stand-in-model' },
    });
    closers.push(() => host.close());
    const agent = await activeAgent(http, admin, serverId, { capabilities: ['engine:openai'] });
    standIn.replies.push(
      streamed([
        chunk({ role: 'assistant', content: 'Writing ' }),
        chunk({ content: 'the report.' }),
        ...toolCallChunks([
          { id: 'call_report', name: 'write_file', arguments: { path: 'report.md', content: '# Report\nAll green.\n' } },
        ]).slice(1),
        usageChunk(40, 12),
      ]),
      streamed([...textChunks(['The report ', 'is in ', 'report.md.\n']), usageChunk(70, 8)]),
    );

    const res = await http
      .post(`/api/agents/${agent.id}/execute`)
      .set(as(admin))
      .set('Accept', 'text/event-stream')
      .send({ prompt: 'Write the weekly report' })
      .buffer(true)
      .parse(sseText)
      .expect(200);
    const streamedEvents = parseSse(res.body as string);
    expect(streamedEvents.at(-1)).toMatchObject({ event: 'status', data: { status: 'COMPLETED' } });
    const expectedOutput = 'Writing the report.\nThe report is in report.md.\n';
    expect(
      streamedEvents
        .filter((e) => e.event === 'output')
        .map((e) => e.data.output)
        .join(''),
    ).toBe(expectedOutput);
    // Consecutive output events count as one: how the text is cut into events depends on timing.
    const phases = (list: string[]) => list.filter((phase, i) => phase !== 'output' || list[i - 1] !== 'output');
    expect(phases(streamedEvents.map((e) => e.event))).toEqual([
      'status',
      'status',
      'output',
      'tool_call',
      'file_change',
      'tool_result',
      'progress',
      'output',
      'status',
    ]);

    const executionId = host.calls.find((c) => c.tool === 'execute_prompt')!.args.executionId as string;
    const row = await waitFor(async () => {
      const got = await http.get(`/api/executions/${executionId}`).set(as(admin));
      return got.body.status === 'COMPLETED' ? (got.body as Record<string, unknown>) : undefined;
    });
    expect(row).toMatchObject({ status: 'COMPLETED', output: expectedOutput, tokensUsed: 130, error: null });

    const log = await http.get(`/api/executions/${executionId}/events`).query({ limit: 100 }).set(as(admin)).expect(200);
    const items = log.body.items as { phase: string; output?: string }[];
    expect(items.map((e) => e.phase)).toEqual(streamedEvents.map((e) => e.event));
    expect(
      items
        .filter((e) => e.phase === 'output')
        .map((e) => e.output)
        .join(''),
    ).toBe(expectedOutput);

    expect(await readFile(path.join(workspacePath(workspaceRoot, agent.id), 'report.md'), 'utf8')).toBe('# Report\nAll green.\n');
    expect(standIn.requests).toHaveLength(2);
    expect(JSON.stringify([res.body, log.body, row])).not.toContain('sk-e2e-secret');
  });
});
