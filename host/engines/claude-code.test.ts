/**
 * The claude-code engine on a real reference host, called by the SDK client. The real Claude
 * Code CLI runs only in test/llm/claude-code-cli.llm.test.ts (npm test stays fast and needs no
 * 400 MB binary), and the lines it printed are replayed in claude-code-stream.test.ts; here a
 * stand-in executable named `claude` is put on the host's PATH (test/claude-stand-in/): it
 * replays recorded stream-json transcripts written from the CLI's documented message format
 * (system init, assistant text/tool_use blocks, user tool_result blocks, the final result)
 * and records the argv, working directory, environment and pid it was started with. No
 * network: the host listens on loopback and the "CLI" is a local process.
 */
import { existsSync, readFileSync } from 'node:fs';
import { chmod, chown, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { HostMessage } from '../../lib/host-contract';
import { startAgentHost, type AgentHost, type AgentHostOptions } from '../server';
import { ensureWorkspace, workspacePath } from '../workspaces';
import { installStandIn as install, type StandInConfig } from '../../test/claude-stand-in/stand-in';
import { cliNetwork } from './claude-code-cli';
import { FILE_TOOLS, permissionRules } from './claude-code-permissions';
import { ClaudeStreamMapper } from './claude-code-stream';

const TOKEN = 'claude-engine-test-token';

let dir: string;
const hosts: AgentHost[] = [];
const clients: Client[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'claude-engine-'));
});

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
  await rm(dir, { recursive: true, force: true });
});

const installStandIn = (config: StandInConfig) => install(dir, config);

function hostEnv(bin: string | undefined): NodeJS.ProcessEnv {
  return {
    PATH: [bin, '/usr/local/bin', '/usr/bin', '/bin'].filter(Boolean).join(':'),
    HOME: '/home/operator',
    HOST_TOKEN: 'the-host-secret',
    HOST_OPENAI_API_KEY: 'sk-openai-host-secret',
    DATABASE_URL: 'postgres://secret@db/fleet',
    ANTHROPIC_API_KEY: 'sk-ant-test-key',
    CLAUDE_CODE_USE_BEDROCK: '',
    AWS_SECRET_ACCESS_KEY: 'not-for-the-cli',
  };
}

async function startHost(bin: string | undefined, options: Partial<AgentHostOptions> = {}): Promise<AgentHost> {
  const host = await startAgentHost({
    token: TOKEN,
    engine: 'claude-code',
    workspaceRoot: path.join(dir, 'workspaces'),
    allowCommands: true,
    env: hostEnv(bin),
    // The CLI's protocol; the sandbox around the CLI has a test of its own below.
    sandbox: { mode: 'off' },
    ...options,
  });
  hosts.push(host);
  return host;
}

async function connect(host: AgentHost): Promise<{ client: Client; messages: HostMessage[] }> {
  const client = new Client({ name: 'claude-engine-test', version: '0.0.0' });
  clients.push(client);
  const messages: HostMessage[] = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (notification) => {
    messages.push(notification.params.data as HostMessage);
  });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
  );
  return { client, messages };
}

async function execute(client: Client, args: Record<string, unknown>, signal?: AbortSignal): Promise<CallToolResult> {
  const call = {
    name: 'execute_prompt',
    arguments: { executionId: 'exec-1', agentId: 'agent-1', agentName: 'Coder', prompt: 'Write hello.txt and finalise notes.md', ...args },
  };
  return (await client.callTool(call, undefined, { signal, timeout: 20_000 })) as CallToolResult;
}

function textOf(result: CallToolResult): string {
  return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
}

/** Whether `pid` is a running process. A zombie has ended: it only waits for its parent (init, once orphaned) to reap it. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state ...".
    return readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '')[0] !== 'Z';
  } catch {
    return true;
  }
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('the claude-code engine in the host’s sandbox', () => {
  it('runs the CLI in a sandbox: its workspace, nothing of the host, not root, its own pids, the network only through the proxy', async () => {
    // Where the sandbox's user can reach the CLI (a private temp dir would be refused at provision_agent).
    await chmod(dir, 0o755);
    const tokenFile = path.join(dir, 'host-token');
    await writeFile(tokenFile, 'the-host-secret');
    const workspace = workspacePath(path.join(dir, 'workspaces'), 'agent-1');
    // The stand-in records into the workspace: in the sandbox nothing else is writable.
    const { bin, recorded } = await install(
      dir,
      { transcript: 'work.jsonl', probe: [tokenFile, '/etc/shadow', path.join(dir, 'workspaces')] },
      { recordIn: workspace },
    );
    const host = await startHost(bin, { sandbox: {} });
    const { client } = await connect(host);
    expect(
      (
        await client.callTool({
          name: 'provision_agent',
          arguments: { agentId: 'agent-1', name: 'Coder', role: 'WORKER', capabilities: ['network:example.com'] },
        })
      ).isError,
    ).toBeFalsy();
    await writeFile(path.join(workspace, 'notes.md'), 'draft notes\n');
    const owner = await stat(workspace);
    await chown(path.join(workspace, 'notes.md'), owner.uid, owner.gid);

    const result = await execute(client, { allowedTools: ['ls'] });
    expect(textOf(result)).toBe('Done: hello.txt is written and notes.md is final.');
    expect(await readFile(path.join(workspace, 'hello.txt'), 'utf8')).toBeTruthy();

    const entries = await recorded();
    const start = entries.find((e) => e.event === 'start')!;
    expect(start.cwd).toBe(workspace);
    // Its own PID namespace (bwrap's init is 1, the bridge 2), and not root.
    expect(start.pid).toBeLessThan(10);
    expect(start.uid).not.toBe(0);
    expect(start.env!.HTTPS_PROXY).toBe('http://127.0.0.1:3128');
    expect(start.env!.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC).toBe('1');
    // The CLI's HOME is the sandbox's private /tmp, gone with it: its .claude.json and transcripts stay out of the workspace.
    expect(start.env!.HOME).toBe('/tmp');
    expect(start.env!.HOST_TOKEN).toBeUndefined();
    expect(entries.filter((e) => e.event === 'probe').map((e) => [e.path, e.readable])).toEqual([
      [tokenFile, false],
      ['/etc/shadow', false],
      [path.join(dir, 'workspaces'), false],
    ]);
  });

  it('lets the CLI reach its API and the agent’s allowlist, nothing else', () => {
    expect(cliNetwork({}).map((e) => e.text)).toEqual(['api.anthropic.com']);
    expect(cliNetwork({ ANTHROPIC_BASE_URL: 'https://llm-gateway.example.com:8443/anthropic' }).map((e) => e.text)).toEqual([
      'llm-gateway.example.com:8443',
    ]);
    expect(cliNetwork({ CLAUDE_CODE_USE_BEDROCK: '1' }).map((e) => e.text)).toEqual(['*.amazonaws.com']);
    expect(cliNetwork({ CLAUDE_CODE_USE_VERTEX: '1' }).map((e) => e.text)).toEqual(['*.googleapis.com']);
  });

  it('refuses provision_agent when the sandbox’s user cannot reach the CLI, and says what to do', async () => {
    await chmod(dir, 0o700);
    const { bin } = await installStandIn({ transcript: 'work.jsonl' });
    const host = await startHost(bin, { sandbox: {} });
    const { client } = await connect(host);
    const refused = (await client.callTool({
      name: 'provision_agent',
      arguments: { agentId: 'agent-1', name: 'Coder', role: 'WORKER', capabilities: [] },
    })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toContain(
      `which the sandbox's user cannot read: install it where every user can (npm install -g puts it under /usr/local), or set HOST_SANDBOX=off`,
    );
  });
});

describe('the claude-code engine', () => {
  it('runs the CLI in the workspace with the agent permissions as flags, and maps every message type to events', async () => {
    const { bin, recorded } = await installStandIn({ transcript: 'work.jsonl' });
    const host = await startHost(bin);
    const workspace = await ensureWorkspace(path.join(dir, 'workspaces'), 'agent-1');
    await writeFile(path.join(workspace, 'notes.md'), 'draft notes\n');
    const { client, messages } = await connect(host);

    const allowedTools = ['ls', { name: 'git', allowedCommands: ['status', 'log'], blockedCommands: ['log --all'] }];
    const result = await execute(client, { allowedTools, prompt: '-rf is not an option: write hello.txt' });

    expect(result.isError).toBeFalsy();
    const final = 'Done: hello.txt is written and notes.md is final.';
    expect(result.structuredContent).toEqual({ success: true, output: final, tokensUsed: 1200 + 345 + 300 + 9000 });

    const [start] = await recorded();
    expect(start!.cwd).toBe(workspace);
    const argv = start!.argv!;
    expect(argv.slice(0, 4)).toEqual(['-p', '--output-format', 'stream-json', '--verbose']);
    expect(argv.slice(argv.indexOf('--permission-mode'), argv.indexOf('--permission-mode') + 2)).toEqual(['--permission-mode', 'default']);
    const allowed = argv.slice(argv.indexOf('--allowedTools') + 1, argv.indexOf('--disallowedTools'));
    expect(allowed).toEqual(
      expect.arrayContaining([
        'Read(./**)',
        'Edit(./**)',
        'Write(./**)',
        'TaskCreate',
        'TaskUpdate',
        'Bash(ls *)',
        'Bash(git status *)',
        'Bash(git log *)',
      ]),
    );
    // No bare Read or Edit (every path on the machine), no bare git.
    expect(allowed).not.toEqual(expect.arrayContaining(['Read']));
    expect(allowed).not.toEqual(expect.arrayContaining(['Edit']));
    expect(allowed).not.toContain('Bash(git *)');
    const disallowed = argv.slice(argv.indexOf('--disallowedTools') + 1, argv.indexOf('--append-system-prompt'));
    expect(disallowed).toEqual(expect.arrayContaining(['Bash(git log --all *)', 'Bash(git -* log --all *)', 'WebFetch', 'WebSearch']));
    expect(disallowed).not.toContain('Bash');
    expect(argv[argv.indexOf('--append-system-prompt') + 1]).toContain('ls, git');
    // The prompt comes after `--`: a prompt starting with a dash is not read as an option.
    expect(argv.slice(-2)).toEqual(['--', '-rf is not an option: write hello.txt']);

    const env = start!.env!;
    expect(env.HOST_TOKEN).toBeUndefined();
    expect(env.HOST_OPENAI_API_KEY).toBeUndefined();
    expect(env.DATABASE_URL).toBeUndefined();
    expect(env.AWS_SECRET_ACCESS_KEY).toBeUndefined();
    expect(env.ANTHROPIC_API_KEY).toBe('sk-ant-test-key');
    // The CLI's own HOME (it writes .claude.json and its transcripts there), not the workspace; its own traffic off.
    expect(env.HOME).not.toBe(workspace);
    expect(path.relative(workspace, env.HOME!).startsWith('..')).toBe(true);
    expect(env.HOME).toMatch(/mcp-fleet-claude-home-/);
    expect(existsSync(env.HOME!)).toBe(false);
    expect(env).toMatchObject({ DISABLE_TELEMETRY: '1', DISABLE_ERROR_REPORTING: '1', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' });
    expect(env.PATH!.split(':')[0]).toBe(bin);

    // init and compact_boundary are not events; the thinking block is not output.
    expect(messages.map((m) => [m.type, 'name' in m ? m.name : 'path' in m ? m.path : undefined])).toEqual([
      ['output', undefined],
      ['todo', undefined],
      ['tool_call', 'Bash'],
      ['tool_result', 'Bash'],
      ['tool_call', 'Write'],
      ['tool_result', 'Write'],
      ['file_change', 'hello.txt'],
      ['tool_call', 'Edit'],
      ['tool_result', 'Edit'],
      ['file_change', 'notes.md'],
      ['tool_call', 'Edit'],
      ['tool_result', 'Edit'],
      ['todo', undefined],
      ['output', undefined],
    ]);
    expect(messages.every((m) => m.executionId === 'exec-1')).toBe(true);
    const outputs = messages.filter((m) => m.type === 'output');
    expect(outputs.map((m) => m.text)).toEqual(["I'll look at the workspace first.\n", `${final}\n`]);
    const todos = messages.filter((m) => m.type === 'todo');
    expect(todos[0]!.todos).toEqual([
      { id: '1', content: 'Check the repository', status: 'in_progress' },
      { id: '2', content: 'Write hello.txt', status: 'pending' },
      { id: '3', content: 'Finalise notes.md', status: 'pending' },
    ]);
    expect(todos[1]!.todos.map((t) => t.status)).toEqual(['completed', 'completed', 'completed']);
    expect(messages[2]).toMatchObject({ type: 'tool_call', toolCallId: 'toolu_02', arguments: { command: 'git status' } });
    expect(messages[3]).toMatchObject({
      type: 'tool_result',
      toolCallId: 'toolu_02',
      result: { output: 'On branch main\nnothing to commit, working tree clean' },
    });
    expect(messages[8]).toMatchObject({
      type: 'tool_result',
      toolCallId: 'toolu_04',
      result: { output: `The file ${workspace}/notes.md has been updated.` },
    });
    expect(messages[6]).toMatchObject({ type: 'file_change', path: 'hello.txt', change: 'created' });
    expect(messages[9]).toMatchObject({ type: 'file_change', path: 'notes.md', change: 'modified' });
    // The failed edit: its error is the result, and no file changed.
    expect(messages[11]).toMatchObject({
      type: 'tool_result',
      toolCallId: 'toolu_05',
      result: { error: '<tool_use_error>File does not exist.</tool_use_error>' },
    });
    expect(await readFile(path.join(workspace, 'hello.txt'), 'utf8')).toBe('hello\n');
    expect(await readFile(path.join(workspace, 'notes.md'), 'utf8')).toBe('final notes\n');
  });

  it('reports a Write as created only for a file that was not there before the run, whatever the disk says when it is read', () => {
    const workspace = '/ws/agent-1';
    const mapper = new ClaudeStreamMapper({ workspace, existedBefore: (file) => file === '/ws/agent-1/old.txt' });
    const write = (id: string, file: string) =>
      JSON.stringify({
        type: 'assistant',
        message: { content: [{ type: 'tool_use', id, name: 'Write', input: { file_path: file, content: 'x' } }] },
      });
    const done = (id: string) =>
      JSON.stringify({ type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: id, content: 'ok' }] } });
    const changes = [
      write('a', '/ws/agent-1/old.txt'),
      done('a'),
      write('b', 'new.txt'),
      done('b'),
      write('c', '/ws/agent-1/new.txt'),
      done('c'),
      write('d', '/elsewhere/x'),
      done('d'),
    ]
      .flatMap((line) => mapper.line(line).events)
      .filter((event) => event.type === 'file_change');
    expect(changes).toEqual([
      { type: 'file_change', path: 'old.txt', change: 'modified' },
      { type: 'file_change', path: 'new.txt', change: 'created' },
      { type: 'file_change', path: 'new.txt', change: 'modified' },
      { type: 'file_change', path: '/elsewhere/x', change: 'created' },
    ]);
    expect(() => mapper.line('{"type":"assistant","message":{"content":[{"type":"tool_use","name":"Bash"}]}}')).toThrow(
      /malformed tool_use block on line 9: id: /,
    );
  });

  it('gives the CLI no Bash at all when the agent has no allowed tools, or the host runs no commands', async () => {
    expect(permissionRules([], true)).toEqual({
      allowed: [...FILE_TOOLS],
      disallowed: ['WebFetch', 'WebSearch', 'Bash'],
    });
    const git = { name: 'git', allowedCommands: [], blockedCommands: [] };
    expect(permissionRules([git], false)).toMatchObject({ disallowed: expect.arrayContaining(['Bash']) });
    expect(permissionRules([{ name: 'git),Bash(rm', allowedCommands: [], blockedCommands: [] }], true)).toMatch(
      /cannot be given to Claude Code/,
    );
    // The CLI runs commands itself, so the host cannot ask before each: a tool that needs approval is not given to it.
    expect(
      permissionRules(
        [
          { ...git, requiresApproval: true },
          { name: 'ls', allowedCommands: [], blockedCommands: [] },
        ],
        true,
      ),
    ).toEqual({
      allowed: [...FILE_TOOLS, 'Bash(ls *)'],
      disallowed: ['WebFetch', 'WebSearch', 'Bash(git *)', 'Bash(git)'],
    });

    const { bin, recorded } = await installStandIn({ transcript: 'partial.jsonl' });
    const host = await startHost(bin);
    const { client } = await connect(host);
    await execute(client, {});
    const argv = (await recorded())[0]!.argv!;
    expect(argv.filter((arg) => arg.startsWith('Bash'))).toEqual(['Bash']);
    expect(argv.indexOf('Bash')).toBeGreaterThan(argv.indexOf('--disallowedTools'));
    expect(argv[argv.indexOf('--append-system-prompt') + 1]).toContain('You may not run shell commands');
  });

  it('denies git’s global options that change what runs or where unless the grant names them, so a blocked command stays blocked behind them', () => {
    const gitRules = (allowedCommands: string[], blockedCommands: string[] = []) =>
      permissionRules([{ name: 'git', allowedCommands, blockedCommands }], true) as { allowed: string[]; disallowed: string[] };
    const blocked = gitRules([], ['push']);
    expect(blocked.allowed).toContain('Bash(git *)');
    expect(blocked.disallowed).toEqual(
      expect.arrayContaining([
        'Bash(git push *)',
        'Bash(git push)',
        // Behind any global option, as the host's own check finds the command: `git --no-pager push`, `git -C . push`.
        'Bash(git -* push *)',
        'Bash(git -* push)',
        // No space before the `*`: `--git-dir=x` as well as `--git-dir x`.
        'Bash(git -C*)',
        'Bash(git -c*)',
        'Bash(git --git-dir*)',
        'Bash(git --exec-path*)',
        'Bash(git --config-env*)',
      ]),
    );
    // A program without known global options: the blocked command alone.
    expect(permissionRules([{ name: 'jq', allowedCommands: [], blockedCommands: ['-n'] }], true)).toMatchObject({
      disallowed: ['WebFetch', 'WebSearch', 'Bash(jq -n *)', 'Bash(jq -n)'],
    });
    // An option entry is no command: git stays whole, and the option it names is no longer denied.
    const named = gitRules(['-C']);
    expect(named.allowed).toContain('Bash(git *)');
    expect(named.allowed).not.toContain('Bash(git -C *)');
    expect(named.disallowed).not.toContain('Bash(git -C*)');
    expect(named.disallowed).toContain('Bash(git -c*)');
    // One value of an option cannot be said as a prefix: the option stays denied.
    expect(gitRules(['status', '-c user.name=bot']).disallowed).toContain('Bash(git -c*)');
    expect(gitRules(['status', '-c user.name=bot']).allowed).toEqual(expect.arrayContaining(['Bash(git status *)']));
    // A program without a profile gets no such rules.
    expect(permissionRules([{ name: 'jq', allowedCommands: [], blockedCommands: [] }], true)).toMatchObject({
      disallowed: ['WebFetch', 'WebSearch'],
    });
  });

  it('fails the run with the reason of an is_error result, of a non-zero exit with stderr, and of a malformed line', async () => {
    const { bin } = await installStandIn({ transcript: 'api-error.jsonl' });
    const host = await startHost(bin);
    const { client, messages } = await connect(host);
    const typesOf = (executionId: string) => messages.filter((m) => m.executionId === executionId).map((m) => m.type);
    let result = await execute(client, {});
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('Claude Code failed during the run: API Error: 529 Overloaded');
    expect(typesOf('exec-1')).toEqual(['output']);

    await installStandIn({ transcript: 'partial.jsonl', exitCode: 2, stderr: 'Error: Invalid API key · Please run /login\n' });
    result = await execute(client, { executionId: 'exec-2' });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('Claude Code exited with code 2: Error: Invalid API key · Please run /login');

    await installStandIn({ refuse: "error: unknown option '--bogus'\n" });
    result = await execute(client, { executionId: 'exec-3' });
    expect(textOf(result)).toBe("Claude Code exited with code 1: error: unknown option '--bogus'");

    // Past the system's limit for one argument (128 KiB on Linux): the CLI cannot even start.
    result = await execute(client, { executionId: 'exec-5', prompt: 'x'.repeat(200_000) });
    expect(textOf(result)).toBe('Claude Code could not be started: spawn E2BIG');

    await installStandIn({ transcript: 'malformed.jsonl' });
    result = await execute(client, { executionId: 'exec-4' });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('claude sent a line that is not JSON (line 3): Warning: this is not a JSON line');
    // What came before the bad line was sent; nothing after it.
    expect(typesOf('exec-4')).toEqual(['output']);
  });

  it('answers with data when the final answer is JSON matching the response schema, and fails the run when it does not match', async () => {
    const { bin, recorded } = await installStandIn({ transcript: 'json.jsonl' });
    const host = await startHost(bin);
    const { client } = await connect(host);
    const schema = { type: 'object', properties: { name: { type: 'string' }, files: { type: 'integer' } }, required: ['name', 'files'] };
    const result = await execute(client, { responseSchema: schema, context: { ticket: 'FLEET-12' } });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ success: true, data: { name: 'reviewer', files: 2 } });
    const system = (await recorded())[0]!.argv!;
    const appended = system[system.indexOf('--append-system-prompt') + 1]!;
    expect(appended).toContain(JSON.stringify(schema));
    expect(appended).toContain('{"ticket":"FLEET-12"}');

    const wrong = await execute(client, {
      executionId: 'exec-2',
      responseSchema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] },
    });
    expect(wrong.isError).toBe(true);
    expect(textOf(wrong)).toMatch(/^Claude Code's answer does not match the response schema: title: /);
  });

  it.each([
    ['honours SIGTERM', false, 500],
    ['ignores SIGTERM (killed after the grace period)', true, 3000],
  ])('kills the CLI and the commands it started when the run is cancelled: a CLI that %s', async (_, ignoreTerm, withinMs) => {
    const { bin, recorded } = await installStandIn({ transcript: 'hold.jsonl', holdAfterLine: 2, ignoreTerm });
    const host = await startHost(bin);
    const { client, messages } = await connect(host);
    const controller = new AbortController();
    const call = execute(client, {}, controller.signal).catch((error: unknown) => error);
    let pids: number[] = [];
    await until(async () => {
      const entries = await recorded();
      pids = entries.filter((e) => e.event === 'start' || e.event === 'child').map((e) => e.pid!);
      return pids.length === 2;
    });
    await until(() => messages.some((m) => m.type === 'tool_call'));
    expect(pids.every(alive)).toBe(true);

    const cancelled = Date.now();
    controller.abort();
    await call;
    await host.waitForCancellation('exec-1');
    await until(() => !pids.some(alive), 4000);
    expect(Date.now() - cancelled).toBeLessThan(withinMs);
    expect((await recorded()).some((e) => e.event === 'signal' && e.signal === 'SIGTERM')).toBe(true);
    await until(() => host.running() === 0);
  });

  it('stops the CLI with the limit error past the run limits: output bytes and wall time', async () => {
    const { bin, recorded } = await installStandIn({ transcript: 'work.jsonl' });
    const chatty = await startHost(bin, { limits: { outputBytes: 20 } });
    const { client, messages } = await connect(chatty);
    const result = await execute(client, {});
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('output limit reached: a run may print at most 20 bytes; it was stopped');
    expect(
      messages
        .filter((m) => m.type === 'output')
        .map((m) => m.text)
        .join(''),
    ).toBe("I'll look at the wor");

    await installStandIn({ transcript: 'hold.jsonl', holdAfterLine: 2 });
    const slow = await startHost(bin, { limits: { wallTimeMs: 300 } });
    const late = await connect(slow);
    const stopped = await execute(late.client, { executionId: 'exec-2' });
    expect(textOf(stopped)).toBe('wall-time limit reached: a run may take at most 300 ms; it was stopped');
    const pids = (await recorded())
      .filter((e) => e.event === 'child' || (e.event === 'start' && e.argv?.includes('-p')))
      .map((e) => e.pid!);
    await until(() => !pids.some(alive), 3000);
  });

  it('refuses provision_agent on the claude-code engine when the CLI is missing, and says how to install it', async () => {
    const host = await startHost(undefined);
    const { client } = await connect(host);
    const provision = (await client.callTool({
      name: 'provision_agent',
      arguments: { agentId: 'agent-1', name: 'Coder', role: 'WORKER', capabilities: ['engine:claude-code'] },
    })) as CallToolResult;
    expect(provision.isError).toBe(true);
    expect(textOf(provision)).toContain(
      'the claude-code engine needs the Claude Code CLI: `claude` was not found on PATH (install @anthropic-ai/claude-code or set HOST_CLAUDE_PATH)',
    );
    expect(host.agents.has('agent-1')).toBe(false);

    // An agent the host never provisioned (a host restarted since) runs on the host's engine: the same reason, at its run.
    const run = await execute(client, {});
    expect(run.isError).toBe(true);
    expect(textOf(run)).toBe(
      'the claude-code engine needs the Claude Code CLI: `claude` was not found on PATH (install @anthropic-ai/claude-code or set HOST_CLAUDE_PATH)',
    );
  });
});
