/**
 * The real Claude Code CLI (@anthropic-ai/claude-code, installed once into .tools/claude-code
 * by dev/claude-code-cli.ts) driven through the reference host's claude-code engine, offline:
 * its API is a loopback stand-in for a third-party API, Anthropic's Messages API
 * (./anthropic-stand-in.ts: the documented streaming events and error bodies), reached through
 * ANTHROPIC_BASE_URL. What the model "says" is scripted; everything else is the real CLI: its
 * requests, its tools and permission checks, its retries, and the stream-json lines it prints,
 * which the host maps to events. The CLI is started through a small wrapper that keeps a copy of
 * its stdout, so each test asserts the mapping of what the CLI really printed.
 *
 * `CLAUDE_CODE_RECORD=1` also writes those lines to test/fixtures/claude-code/ (the unit tests
 * of host/engines/claude-code-stream.test.ts read them).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { installClaudeCode } from '../../dev/claude-code-cli';
import type { HostMessage } from '../../lib/host-contract';
import { startAgentHost, type AgentHost } from '../../host/server';
import { ensureWorkspace } from '../../host/workspaces';
import { startMessagesStandIn, type MessagesStandIn, type Reply } from './anthropic-stand-in';

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'claude-code');
// A model name the CLI does not know: it then offers its task tools (TaskCreate, TaskUpdate), as it does to a local model.
const MODEL = 'stand-in-model';

let cli: { path: string; version: string };
let dir: string;
const closers: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  cli = await installClaudeCode({ cliPath: process.env.CLAUDE_CODE_PATH || undefined });
}, 600_000);

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'claude-llm-'));
});

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

interface Ran {
  result: CallToolResult;
  messages: HostMessage[];
  progress: string[];
  /** What the CLI printed on stdout, line by line. */
  lines: Record<string, unknown>[];
  workspace: string;
  standIn: MessagesStandIn;
  /** `HOME=<dir> <mode>` and the DISABLE_* variables the CLI was started with. */
  env: string[];
}

/** One execute_prompt on a host whose claude-code engine runs the real CLI against the scripted stand-in. */
async function runCli(
  name: string,
  script: (request: Parameters<Parameters<typeof startMessagesStandIn>[0]>[0], n: number) => Reply,
  options: {
    allowedTools?: unknown[];
    env?: NodeJS.ProcessEnv;
    prepare?: (workspace: string) => void;
    sandboxed?: boolean;
    /** A real server of the Messages API instead of the stand-in (which then gets no request). */
    baseUrl?: string;
    model?: string;
  } = {},
): Promise<Ran> {
  const standIn = await startMessagesStandIn(script);
  closers.push(() => standIn.close());
  const stdoutCopy = path.join(dir, `${name}.jsonl`);
  // The wrapper keeps a copy of the CLI's stdout; the engine sees the same lines.
  const wrapper = path.join(dir, 'claude');
  const seen = path.join(dir, `${name}.env`);
  await writeFile(
    wrapper,
    [
      '#!/bin/bash',
      // The HOME the engine gave the CLI, its mode, and the switches of the CLI's own traffic.
      `[ "$1" = --version ] || { echo "HOME=$HOME $(stat -c %a "$HOME")"; env | grep -E '^(DISABLE_|CLAUDE_CODE_DISABLE_)' | sort; } > "${seen}"`,
      `"${cli.path}" "$@" | tee -a "${stdoutCopy}"`,
      'exit ${PIPESTATUS[0]}',
      '',
    ].join('\n'),
  );
  await chmod(wrapper, 0o755);
  const workspaceRoot = path.join(dir, 'workspaces');
  const host: AgentHost = await startAgentHost({
    token: 'claude-llm-test-token',
    engine: 'claude-code',
    workspaceRoot,
    allowCommands: true,
    env: {
      PATH: '/usr/local/bin:/usr/bin:/bin',
      // In the sandbox only the workspace is writable: no wrapper keeps a copy there.
      HOST_CLAUDE_PATH: options.sandboxed ? cli.path : wrapper,
      HOST_CLAUDE_MODEL: options.model ?? MODEL,
      ANTHROPIC_BASE_URL: options.baseUrl ?? standIn.url,
      ANTHROPIC_API_KEY: 'sk-ant-stand-in',
      ...options.env,
    },
    // The CLI's protocol and permissions; the host's sandbox around it is claude-code.test.ts's.
    sandbox: options.sandboxed ? {} : { mode: 'off' },
  });
  closers.push(() => host.close());
  const workspace = await ensureWorkspace(workspaceRoot, 'agent-1');
  if (options.sandboxed) await host.sandbox.prepareWorkspace(workspaceRoot, workspace);
  options.prepare?.(workspace);
  const client = new Client({ name: 'claude-llm-test', version: '0.0.0' });
  closers.push(() => client.close());
  const messages: HostMessage[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void messages.push(n.params.data as HostMessage));
  await client.connect(
    new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
  );
  const progress: string[] = [];
  const result = (await client.callTool(
    {
      name: 'execute_prompt',
      arguments: {
        executionId: `exec-${name}`,
        agentId: 'agent-1',
        agentName: 'Coder',
        prompt: 'Do the work.',
        allowedTools: options.allowedTools ?? [],
      },
    },
    undefined,
    { timeout: 1_800_000, onprogress: (p) => void progress.push(p.message ?? '') },
  )) as CallToolResult;
  const text = existsSync(stdoutCopy) ? await readFile(stdoutCopy, 'utf8') : '';
  if (process.env.CLAUDE_CODE_RECORD) {
    await mkdir(FIXTURES, { recursive: true });
    await copyFile(stdoutCopy, path.join(FIXTURES, `${name}.jsonl`));
  }
  const lines = text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  const env = existsSync(seen) ? (await readFile(seen, 'utf8')).trim().split('\n') : [];
  return { result, messages, progress, lines, workspace, standIn, env };
}

const textOf = (result: CallToolResult) => result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
const bash = (id: string, command: string) => ({ type: 'tool_use' as const, id, name: 'Bash', input: { command, description: command } });

describe(`the real Claude Code CLI through the claude-code engine`, () => {
  it('maps a working run: tasks as todo events, a file written, git push blocked behind global options, cached tokens counted, nothing of the CLI in the workspace', async () => {
    const git = (workspace: string, args: string) => execFileSync('sh', ['-c', `git ${args}`], { cwd: workspace, stdio: 'pipe' });
    const remote = path.join(dir, 'remote.git');
    const ran = await runCli(
      'work',
      (_request, n) => {
        switch (n) {
          case 0:
            return {
              content: [
                { type: 'text', text: 'I will plan the work first.' },
                {
                  type: 'tool_use',
                  id: 'toolu_task1',
                  name: 'TaskCreate',
                  input: { subject: 'Write hello.txt', description: 'Write hello.txt' },
                },
                { type: 'tool_use', id: 'toolu_task2', name: 'TaskCreate', input: { subject: 'Try to push', description: 'Try to push' } },
              ],
              usage: { input_tokens: 100, output_tokens: 20, cache_read_input_tokens: 3000, cache_creation_input_tokens: 500 },
            };
          case 1:
            return {
              content: [
                { type: 'tool_use', id: 'toolu_upd1', name: 'TaskUpdate', input: { taskId: '1', status: 'in_progress' } },
                { type: 'tool_use', id: 'toolu_write', name: 'Write', input: { file_path: 'hello.txt', content: 'hello\n' } },
              ],
            };
          case 2:
            return {
              content: [
                bash('toolu_push_C', 'git -C . push origin HEAD'),
                bash('toolu_push_c', 'git -c color.ui=never push origin HEAD'),
                bash('toolu_push_nopager', 'git --no-pager push origin HEAD'),
                bash('toolu_push', 'git push origin HEAD'),
                bash('toolu_status', 'git status --short'),
                bash('toolu_ls', 'ls'),
                bash('toolu_cat', 'cat hello.txt'),
                bash('toolu_redirect', 'cat hello.txt > copy.txt'),
                bash('toolu_head', 'head -1 hello.txt'),
                bash('toolu_touch', 'touch new.txt'),
              ],
            };
          case 3:
            return {
              content: [
                { type: 'tool_use', id: 'toolu_upd2', name: 'TaskUpdate', input: { taskId: '1', status: 'completed' } },
                { type: 'tool_use', id: 'toolu_upd3', name: 'TaskUpdate', input: { taskId: '2', status: 'completed' } },
              ],
            };
          default:
            return {
              content: [{ type: 'text', text: 'Done: hello.txt is written; pushing is not allowed here.' }],
              usage: { input_tokens: 50, output_tokens: 15, cache_read_input_tokens: 4000, cache_creation_input_tokens: 0 },
            };
        }
      },
      {
        allowedTools: ['ls', 'cat', { name: 'git', allowedCommands: [], blockedCommands: ['push'] }],
        prepare: (workspace) => {
          git(workspace, 'init -q -b main && git -c user.email=a@example.com -c user.name=A commit -q --allow-empty -m start');
          execFileSync('git', ['init', '-q', '--bare', remote]);
          git(workspace, `remote add origin ${remote}`);
        },
      },
    );
    expect(textOf(ran.result)).toBe('Done: hello.txt is written; pushing is not allowed here.');
    expect(ran.result.isError).toBeFalsy();

    // What the CLI printed: its tools (no TodoWrite, no MultiEdit), and a result whose usage holds the cached tokens.
    const init = ran.lines.find((line) => line.type === 'system' && line.subtype === 'init') as {
      tools: string[];
      claude_code_version: string;
    };
    expect(init.claude_code_version).toBe(cli.version);
    expect(init.tools).toEqual(expect.arrayContaining(['TaskCreate', 'TaskUpdate', 'Write', 'Bash']));
    expect(init.tools).not.toContain('TodoWrite');
    expect(init.tools).not.toContain('MultiEdit');
    const final = ran.lines.at(-1) as { type: string; usage: Record<string, number> };
    expect(final.type).toBe('result');
    const usage = final.usage;
    expect(usage.cache_read_input_tokens).toBe(7000);
    expect(ran.result.structuredContent).toMatchObject({
      tokensUsed: usage.input_tokens! + usage.output_tokens! + usage.cache_read_input_tokens! + usage.cache_creation_input_tokens!,
    });

    // The plan: TaskCreate/TaskUpdate are `todo` events with the whole list, not tool calls.
    const todos = ran.messages.filter((m) => m.type === 'todo').map((m) => m.type === 'todo' && m.todos);
    expect(todos.at(0)).toEqual([{ id: '1', content: 'Write hello.txt', status: 'pending' }]);
    expect(todos.at(-1)).toEqual([
      { id: '1', content: 'Write hello.txt', status: 'completed' },
      { id: '2', content: 'Try to push', status: 'completed' },
    ]);
    const calls = ran.messages.filter((m) => m.type === 'tool_call').map((m) => m.type === 'tool_call' && m.name);
    expect(calls).not.toContain('TaskCreate');
    expect(calls).not.toContain('TaskUpdate');
    expect(ran.messages).toContainEqual(expect.objectContaining({ type: 'file_change', path: 'hello.txt', change: 'created' }));

    // Push is blocked however git's global options come before it, and nothing reached the remote.
    const results = new Map(ran.messages.flatMap((m) => (m.type === 'tool_result' ? [[m.toolCallId, m.result]] : [])));
    for (const id of ['toolu_push_C', 'toolu_push_c', 'toolu_push_nopager', 'toolu_push'])
      expect(results.get(id)).toMatchObject({
        error: expect.stringMatching(/^Permission to use Bash with command git .*push origin HEAD has been denied/),
      });
    expect(execFileSync('git', ['--git-dir', remote, 'for-each-ref'], { encoding: 'utf8' })).toBe('');
    expect(results.get('toolu_status')).toEqual({ output: '?? hello.txt' });
    expect(results.get('toolu_ls')).toEqual({ output: 'hello.txt' });
    expect(results.get('toolu_cat')).toEqual({ output: 'hello' });
    // With a rule for cat its redirect into the workspace runs; head has no rule but is in the CLI's read-only set; touch is neither.
    expect(results.get('toolu_redirect')).toEqual({ output: '(Bash completed with no output)' });
    expect(await readFile(path.join(ran.workspace, 'copy.txt'), 'utf8')).toBe('hello\n');
    expect(results.get('toolu_head')).toEqual({ output: 'hello' });
    expect(results.get('toolu_touch')).toMatchObject({ error: expect.stringMatching(/requires approval|needs approval/) });

    // The CLI's own files (.claude.json with its ids, its transcript under .claude/) are in a HOME of its own,
    // private and removed after the run, not in the workspace; its telemetry and error reports are off.
    const [home, mode] = ran.env[0]!.replace(/^HOME=/, '').split(' ');
    expect(path.relative(ran.workspace, home!).startsWith('..')).toBe(true);
    expect(mode).toBe('700');
    expect(existsSync(home!)).toBe(false);
    expect(ran.env.slice(1)).toEqual([
      'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1',
      'DISABLE_AUTOUPDATER=1',
      'DISABLE_ERROR_REPORTING=1',
      'DISABLE_TELEMETRY=1',
    ]);
    expect((await readdir(ran.workspace)).sort()).toEqual(expect.not.arrayContaining(['.claude', '.claude.json']));
    expect(execFileSync('git', ['status', '--short'], { cwd: ran.workspace, encoding: 'utf8' })).not.toMatch(/\.claude/);
  });

  it('fails a run on an API error without the error as output, and shows the CLI’s retries on 5xx as progress', async () => {
    const ran = await runCli('api-error-500', () => ({ status: 500, error: { type: 'api_error', message: 'Internal server error' } }), {
      env: { CLAUDE_CODE_MAX_RETRIES: '2' },
    });
    const retries = ran.lines.filter((line) => line.type === 'system' && line.subtype === 'api_retry');
    expect(retries).toHaveLength(2);
    const synthetic = ran.lines.find((line) => line.type === 'assistant') as { message: { model: string } };
    expect(synthetic.message.model).toBe('<synthetic>');
    expect(ran.result.isError).toBe(true);
    expect(textOf(ran.result)).toMatch(/^Claude Code: API Error: 500 Internal server error/);
    expect(ran.messages.filter((m) => m.type === 'output')).toEqual([]);
    expect(ran.progress.filter((p) => p.startsWith('API error 500'))).toEqual([
      expect.stringMatching(/^API error 500 \(server_error\): retry 1 of 2 in \d+(\.\d)? s$/),
      expect.stringMatching(/^API error 500 \(server_error\): retry 2 of 2 in \d+(\.\d)? s$/),
    ]);
    expect(ran.standIn.requests).toHaveLength(3);
  });

  it('fails a run on a 4xx the CLI does not retry, with its words and no output', async () => {
    const ran = await runCli('api-error-404', () => ({
      status: 404,
      error: { type: 'not_found_error', message: `model: ${MODEL}` },
    }));
    expect(ran.lines.filter((line) => line.type === 'system' && line.subtype === 'api_retry')).toEqual([]);
    expect(ran.result.isError).toBe(true);
    expect(textOf(ran.result)).toMatch(/^Claude Code: /);
    expect(ran.messages.filter((m) => m.type === 'output')).toEqual([]);
  });

  it('runs in the host’s sandbox: the CLI reaches its API through the proxy, writes in the workspace, and leaves nothing of its own there', async () => {
    await chmod(dir, 0o755);
    const ran = await runCli(
      'sandboxed',
      (_request, n) =>
        n === 0
          ? {
              content: [
                { type: 'tool_use', id: 'toolu_write', name: 'Write', input: { file_path: 'note.txt', content: 'from the sandbox\n' } },
                bash('toolu_ls', 'ls'),
              ],
            }
          : { content: [{ type: 'text', text: 'Written.' }] },
      { allowedTools: ['ls'], sandboxed: true },
    );
    expect(textOf(ran.result)).toBe('Written.');
    expect(await readFile(path.join(ran.workspace, 'note.txt'), 'utf8')).toBe('from the sandbox\n');
    expect(ran.messages).toContainEqual(
      expect.objectContaining({ type: 'tool_result', toolCallId: 'toolu_ls', result: { output: 'note.txt' } }),
    );
    expect((await readdir(ran.workspace)).sort()).toEqual(['note.txt']);
  });

  // The CLI's first request is about 18k tokens: minutes for a small model on 2 cores.
  it('answers through a real Messages API server when CLAUDE_CODE_LLM_URL names one (llama.cpp’s /v1/messages)', async () => {
    const baseUrl = process.env.CLAUDE_CODE_LLM_URL;
    if (!baseUrl) {
      console.log(
        'CLAUDE_CODE_LLM_URL is not set: the real CLI ran against the stand-in only (set it to a server offering POST /v1/messages, e.g. llama.cpp’s)',
      );
      return;
    }
    const started = Date.now();
    const ran = await runCli('real-model', () => ({ status: 500, error: { type: 'api_error', message: 'not used' } }), {
      baseUrl,
      model: process.env.CLAUDE_CODE_LLM_MODEL ?? 'local-model',
      // A tiny model may ramble: its answer is kept short.
      env: { CLAUDE_CODE_MAX_RETRIES: '1', CLAUDE_CODE_MAX_OUTPUT_TOKENS: '256' },
    });
    const final = ran.lines.at(-1) as { type: string; is_error: boolean; result?: string };
    console.log(`real model: ${((Date.now() - started) / 1000).toFixed(0)} s, result ${JSON.stringify(final).slice(0, 300)}`);
    expect(final.type).toBe('result');
    expect(ran.standIn.requests).toEqual([]);
    // Whatever the model said, the run is what the CLI's result says, and no line was malformed.
    expect(ran.result.isError ?? false).toBe(final.is_error);
    if (!final.is_error) expect(textOf(ran.result)).toBe(final.result);
  }, 1_800_000);
});
