/**
 * The shell engine on a real reference host, through the official SDK client: a prompt is a
 * runbook of real commands (node, git, touch, sleep from this machine's PATH; no internet), run
 * in the agent's workspace with no shell, their output streamed, the todo list following the
 * `#` headings.
 */
import { execFile } from 'node:child_process';
import { access, chown, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { RequestOptions } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { LoggingMessageNotificationSchema, type CallToolResult, type Progress } from '@modelcontextprotocol/sdk/types.js';
import type { ExecutePromptArgs, HostMessage } from '../lib/host-contract';
import { parseRunbook, SHELL_NEEDS_COMMANDS } from './engines/shell';
import { startAgentHost, type AgentHost, type AgentHostOptions } from './server';
import { gitConfigPath, workspacePath } from './workspaces';

const hosts: AgentHost[] = [];
const clients: Client[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
  await Promise.allSettled(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shell-engine-'));
  dirs.push(dir);
  return dir;
}

async function startHost(options: Partial<AgentHostOptions> = {}): Promise<AgentHost> {
  const host = await startAgentHost({
    token: 'shell-engine-test',
    engine: 'shell',
    allowCommands: true,
    workspaceRoot: await tempDir(),
    ...options,
  });
  hosts.push(host);
  return host;
}

async function connect(host: AgentHost): Promise<{ client: Client; messages: HostMessage[] }> {
  const client = new Client({ name: 'shell-engine-test', version: '0.0.0' });
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

const ALL = ['node', 'git', 'touch', 'ls', 'sleep', 'echo', 'cat'];

let executions = 0;

async function run(
  host: AgentHost,
  prompt: string,
  options: { allowedTools?: ExecutePromptArgs['allowedTools']; agentId?: string; request?: RequestOptions } = {},
) {
  const { client, messages } = await connect(host);
  const progress: Progress[] = [];
  const executionId = `shell-${++executions}`;
  const result = (await client.callTool(
    {
      name: 'execute_prompt',
      arguments: {
        executionId,
        agentId: options.agentId ?? 'agent-1',
        agentName: 'Runbook',
        prompt,
        allowedTools: options.allowedTools ?? ALL,
      },
    },
    undefined,
    { onprogress: (p) => progress.push(p), ...options.request },
  )) as CallToolResult;
  return { result, events: messages.filter((m) => m.executionId === executionId), progress, client };
}

function textOf(result: CallToolResult): string {
  return result.content.map((block) => (block.type === 'text' ? block.text : '')).join('');
}

function outputOf(events: HostMessage[]): string {
  return events.map((e) => (e.type === 'output' ? e.text : '')).join('');
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Pids of live processes whose command line is exactly `argv` (read from /proc, Linux). */
async function pidsOf(argv: string[]): Promise<number[]> {
  const wanted = `${argv.join('\0')}\0`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline === wanted) pids.push(Number(entry));
  }
  return pids;
}

describe('parseRunbook', () => {
  it('reads headings, commands with their line numbers and the `-` prefix; blank lines are skipped', () => {
    expect(parseRunbook('node -v\n\n# Check\r\n  - git status  \n#\n# Done\necho ok')).toEqual({
      headings: ['Check', 'Done'],
      commands: [
        { line: 1, command: 'node -v', tolerateFailure: false },
        { line: 4, command: 'git status', tolerateFailure: true, item: 0 },
        { line: 7, command: 'echo ok', tolerateFailure: false, item: 1 },
      ],
    });
  });
});

describe('the shell engine', () => {
  it('runs each line as a real command, streaming its output in order, with exit codes, progress i/N and the todo list of the headings', async () => {
    const host = await startHost();
    const prompt = [
      '# Check the toolchain',
      'node -e "console.log(1); setTimeout(() => console.error(2), 50)"',
      'git --version',
      '# Say hello',
      'echo hello world',
    ].join('\n');
    const { result, events, progress } = await run(host, prompt);
    expect(result.isError).toBeFalsy();
    expect(events.map((e) => e.type)).toEqual([
      'todo',
      'todo',
      'tool_call',
      'output',
      'output',
      'tool_result',
      'tool_call',
      'output',
      'tool_result',
      'todo',
      'todo',
      'tool_call',
      'output',
      'tool_result',
      'todo',
    ]);
    const todoStates = events.flatMap((e) => (e.type === 'todo' ? [e.todos.map((t) => `${t.content}:${t.status}`).join(', ')] : []));
    expect(todoStates).toEqual([
      'Check the toolchain:pending, Say hello:pending',
      'Check the toolchain:in_progress, Say hello:pending',
      'Check the toolchain:completed, Say hello:pending',
      'Check the toolchain:completed, Say hello:in_progress',
      'Check the toolchain:completed, Say hello:completed',
    ]);
    expect(events.filter((e) => e.type === 'tool_call').map((e) => e.type === 'tool_call' && [e.name, e.arguments])).toEqual([
      ['node', { command: 'node -e "console.log(1); setTimeout(() => console.error(2), 50)"' }],
      ['git', { command: 'git --version' }],
      ['echo', { command: 'echo hello world' }],
    ]);
    for (const e of events.filter((event) => event.type === 'tool_result')) {
      expect(e).toMatchObject({ result: { exitCode: 0, durationMs: expect.any(Number) } });
    }
    const output = outputOf(events);
    expect(output).toMatch(/^1\n2\ngit version \d+\.\d+[^\n]*\nhello world\n$/);
    expect(result.structuredContent).toEqual({ success: true, output });
    expect(progress.map((p) => [p.progress, p.total])).toEqual([
      [1, 3],
      [2, 3],
      [3, 3],
    ]);
    expect(progress[1]!.message).toBe('line 3: `git --version` done');
  });

  it('runs the commands before the first heading outside the todo list, which starts at its heading', async () => {
    const host = await startHost();
    const { result, events } = await run(host, 'echo first\n# Later\n\n# Last\necho second');
    expect(result.structuredContent).toEqual({ success: true, output: 'first\nsecond\n' });
    const shape = events.map((e) =>
      e.type === 'todo' ? `todo ${e.todos.map((t) => t.status).join(',')}` : e.type === 'output' ? `output ${e.text.trim()}` : e.type,
    );
    expect(shape).toEqual([
      'todo pending,pending',
      'tool_call',
      'output first',
      'tool_result',
      // A heading without commands of its own is passed through.
      'todo in_progress,pending',
      'todo completed,pending',
      'todo completed,in_progress',
      'tool_call',
      'output second',
      'tool_result',
      'todo completed,completed',
    ]);
  });

  it('stops at the first failing command: its exit code fails the run and later lines do not run', async () => {
    const host = await startHost();
    const { result, events } = await run(host, '# Work\nnode -e "process.exit(2)"\ntouch not-created');
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('line 2: `node -e "process.exit(2)"` failed: exit code 2');
    expect(events.filter((e) => e.type === 'tool_call')).toHaveLength(1);
    expect(events.find((e) => e.type === 'tool_result')).toMatchObject({ result: { exitCode: 2, error: 'exit code 2' } });
    expect(events.at(-1)).toMatchObject({ type: 'todo', todos: [{ content: 'Work (failed: exit code 2)', status: 'in_progress' }] });
    const workspace = await workspaceOf(host, 'agent-1');
    expect(await exists(path.join(workspace, 'not-created'))).toBe(false);
  });

  it('tolerates the failure of a line starting with `-` and goes on', async () => {
    const host = await startHost();
    const { result, events, progress } = await run(host, '-node -e "process.exit(3)"\ntouch created');
    expect(result.isError).toBeFalsy();
    expect(
      events.filter((e) => e.type === 'tool_result').map((e) => e.type === 'tool_result' && (e.result as { exitCode: number }).exitCode),
    ).toEqual([3, 0]);
    expect(progress[0]!.message).toBe('line 1: `node -e "process.exit(3)"` failed (tolerated): exit code 3');
    expect(await exists(path.join(await workspaceOf(host, 'agent-1'), 'created'))).toBe(true);
  });

  it('refuses what the agent may not run: git without git, through a shell, by path or through env; nothing runs', async () => {
    const host = await startHost();
    for (const [line, reason] of [
      ['git status', "git is not among the agent's allowed tools"],
      ['sh -c "git status"', 'sh -c is a shell, and the host runs no shell'],
      ['/usr/bin/git status', 'give the tool by its name, not a path: /usr/bin/git'],
      ['env git status', 'env starts other programs'],
    ]) {
      const { result, events } = await run(host, `${line}\ntouch after-refusal`, { allowedTools: ['node', 'touch'] });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toContain(`line 1: \`${line}\` refused: ${reason}`);
      expect(events.map((e) => e.type)).toEqual(['tool_call', 'tool_result']);
    }
    // Even a `-` line: a refusal is a permission, not a result to tolerate.
    const tolerated = await run(host, '-git status\ntouch after-refusal', { allowedTools: ['touch'] });
    expect(tolerated.result.isError).toBe(true);
    expect(await exists(path.join(await workspaceOf(host, 'agent-1'), 'after-refusal'))).toBe(false);
  });

  it('cancel kills the running command at once: `sleep 30` is gone well within a second', async () => {
    const host = await startHost();
    const seconds = `30.${process.pid}`;
    const controller = new AbortController();
    const call = run(host, `# Wait\nsleep ${seconds}\ntouch after-sleep`, { request: { signal: controller.signal } }).catch(
      (error: unknown) => error,
    );
    let pids: number[] = [];
    const deadline = Date.now() + 5000;
    while (!(pids = await pidsOf(['sleep', seconds])).length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(pids).toHaveLength(1);
    const started = performance.now();
    controller.abort();
    await call;
    while (host.running() > 0 || (await pidsOf(['sleep', seconds])).length) {
      if (performance.now() - started > 2000) break;
      await new Promise((r) => setTimeout(r, 5));
    }
    const ms = performance.now() - started;
    expect(host.running()).toBe(0);
    expect(await pidsOf(['sleep', seconds])).toEqual([]);
    expect(() => process.kill(pids[0]!, 0)).toThrow();
    // A generous bound for a loaded machine; measured here at a few tens of ms.
    expect(ms).toBeLessThan(1000);
    expect(await exists(path.join(await workspaceOf(host, 'agent-1'), 'after-sleep'))).toBe(false);
  });

  it('ends a run past its output limit or its wall time with a clear error', async () => {
    const loud = await startHost({ limits: { outputBytes: 10 } });
    const big = await run(loud, 'node -e "console.log(\'x\'.repeat(100))"\ntouch after-limit');
    expect(big.result.isError).toBe(true);
    expect(textOf(big.result)).toBe('output limit reached: a run may print at most 10 bytes; it was stopped');
    expect(outputOf(big.events)).toBe('x'.repeat(10));

    const slow = await startHost({ limits: { wallTimeMs: 300 } });
    const started = performance.now();
    const late = await run(slow, 'sleep 20\ntouch after-limit');
    expect(late.result.isError).toBe(true);
    expect(textOf(late.result)).toBe('wall-time limit reached: a run may take at most 300 ms; it was stopped');
    expect(performance.now() - started).toBeLessThan(3000);
    expect(await exists(path.join(await workspaceOf(slow, 'agent-1'), 'after-limit'))).toBe(false);
  });

  it('keeps the workspace between runs and removes it at deactivate_agent with removeWorkspace', async () => {
    const host = await startHost();
    const { client } = await connect(host);
    const provisioned = (await client.callTool({
      name: 'provision_agent',
      arguments: { agentId: 'keeper', name: 'keeper', role: 'WORKER', capabilities: ['engine:shell'] },
    })) as CallToolResult;
    expect(provisioned.isError).toBeFalsy();
    const workspace = await workspaceOf(host, 'keeper');
    expect(await exists(workspace)).toBe(true);

    await run(host, 'touch left-here', { agentId: 'keeper' });
    const second = await run(host, 'ls', { agentId: 'keeper' });
    expect(outputOf(second.events)).toBe('left-here\n');

    await client.callTool({ name: 'deactivate_agent', arguments: { agentId: 'keeper' } });
    expect(await exists(path.join(workspace, 'left-here'))).toBe(true);
    const removed = (await client.callTool({
      name: 'deactivate_agent',
      arguments: { agentId: 'keeper', removeWorkspace: true },
    })) as CallToolResult;
    expect(removed.structuredContent).toEqual({ active: false });
    expect(await exists(workspace)).toBe(false);
    expect(await exists(gitConfigPath(workspace))).toBe(false);
  });

  it('is refused at provision_agent on a host that runs no commands, and an unknown engine is named', async () => {
    const host = await startHost({ engine: 'script', allowCommands: false });
    const { client } = await connect(host);
    const provision = (capabilities: string[]) =>
      client.callTool({
        name: 'provision_agent',
        arguments: { agentId: 'p1', name: 'p1', role: 'WORKER', capabilities },
      }) as Promise<CallToolResult>;
    const shell = await provision(['general', 'engine:shell']);
    expect(shell.isError).toBe(true);
    expect(textOf(shell)).toBe(`the shell engine cannot run agents on this host: ${SHELL_NEEDS_COMMANDS}`);
    const unknown = await provision(['engine:gpt-9']);
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toBe(
      'unknown engine "gpt-9" (capability engine:gpt-9): this host has the engines script, shell, openai, claude-code',
    );
    expect(host.agents.has('p1')).toBe(false);

    const scripted = await provision(['general']);
    expect(scripted.isError).toBeFalsy();
    expect(host.agents.get('p1')).toEqual({ name: 'p1', role: 'WORKER', active: false });
  });
});

/**
 * Command scopes against git's own ways of running programs: each test ran its marker's
 * command before git's global options, aliases, program options and configuration files were
 * read (lib/tool-commands.ts, runner.ts gitEnvironment). A marker file in the workspace says
 * whether a command ran; each refusal is the run's error, readable as it is.
 */
describe('command scopes of git on the shell engine', () => {
  const blocked = { name: 'git', allowedCommands: [], blockedCommands: ['config', 'ls-remote', 'push'] };

  async function step(host: AgentHost, agentId: string, line: string, git: NonNullable<ExecutePromptArgs['allowedTools']>[number]) {
    const { result } = await run(host, line, { agentId, allowedTools: [git, 'touch'] });
    return { ok: !result.isError, text: textOf(result) };
  }

  it('compares blocked commands to the subcommand after -c and -C: the alias is not configured, the upload-pack command does not run', async () => {
    const host = await startHost();
    const workspace = await workspaceOf(host, 'blocked');
    expect(await step(host, 'blocked', 'git init --quiet', blocked)).toEqual({ ok: true, text: '' });
    const configure = 'git -c a.b=c config --global alias.zz "!touch alias-ran"';
    const uploadPack = 'git -C . ls-remote --upload-pack="touch upload-pack-ran" .';
    const answers: { ok: boolean; text: string }[] = [];
    for (const line of [configure, 'git zz', uploadPack]) answers.push(await step(host, 'blocked', line, blocked));
    // Nothing ran (the markers first: they are what happened before).
    expect(await exists(path.join(workspace, 'alias-ran'))).toBe(false);
    expect(await exists(path.join(workspace, 'upload-pack-ran'))).toBe(false);
    expect(answers).toEqual([
      {
        ok: false,
        text: `line 1: \`${configure}\` refused: "git -c a.b=c config --global alias.zz !touch alias-ran" is blocked for this agent (blocked command "config")`,
      },
      {
        ok: false,
        text: 'line 1: `git zz` refused: "git zz" is refused: zz is not one of git’s own commands: an alias or an external git-NAME program, which run what the configuration or the PATH says; the grant\'s allowedCommands must name it ("zz")',
      },
      {
        ok: false,
        text: `line 1: \`${uploadPack}\` refused: "git -C . ls-remote --upload-pack=touch upload-pack-ran ." is blocked for this agent (blocked command "ls-remote")`,
      },
    ]);
  });

  it('runs an alias, a program option or a global option only when the grant names it', async () => {
    const host = await startHost();
    const workspace = await workspaceOf(host, 'named');
    const git = { name: 'git', allowedCommands: [], blockedCommands: [] };
    expect((await step(host, 'named', 'git init --quiet', git)).ok).toBe(true);
    // The repository's own configuration: the agent may write it, since config is not blocked.
    expect((await step(host, 'named', 'git config alias.zz "!touch alias-ran"', git)).ok).toBe(true);
    const refusals: [string, string][] = [
      ['git zz', 'zz is not one of git’s own commands'],
      [
        'git ls-remote --upload-pack="touch upload-pack-ran" .',
        '--upload-pack of git ls-remote runs the program it is given in place of git-upload-pack; the grant\'s allowedCommands must name it ("--upload-pack")',
      ],
      ['git ls-remote --upl="touch upload-pack-ran" .', '--upload-pack of git ls-remote runs the program'],
      ['git -C . status', 'git\'s option -C runs git in another directory; the grant\'s allowedCommands must name it ("-C")'],
      ['git log --output=.gitconfig --format=x', '--output of git log writes to a file it is given'],
      ['git --exec-path=. status', "git's option --exec-path takes git's own programs from another directory"],
    ];
    const answers: { ok: boolean; text: string }[] = [];
    for (const [line] of refusals) answers.push(await step(host, 'named', line, git));
    expect(await exists(path.join(workspace, 'alias-ran'))).toBe(false);
    expect(await exists(path.join(workspace, 'upload-pack-ran'))).toBe(false);
    refusals.forEach(([line, reason], i) => {
      expect(answers[i]).toEqual({
        ok: false,
        text: expect.stringContaining(`line 1: \`${line}\` refused: "${line.replace(/"/g, '')}" is refused: ${reason}`) as string,
      });
    });

    // Named, they run: the markers show that the refusals above were all that stopped them.
    expect((await step(host, 'named', 'git zz', { ...git, allowedCommands: ['zz'] })).ok).toBe(true);
    expect(await exists(path.join(workspace, 'alias-ran'))).toBe(true);
    await step(host, 'named', 'git ls-remote --upload-pack="touch upload-pack-ran" .', { ...git, allowedCommands: ['--upload-pack'] });
    expect(await exists(path.join(workspace, 'upload-pack-ran'))).toBe(true);
  });

  it('keeps git from reading configuration the agent wrote: a .gitconfig in the workspace, the global file, programs in the repository’s config', async () => {
    const host = await startHost();
    const workspace = await workspaceOf(host, 'config');
    const git = { name: 'git', allowedCommands: [], blockedCommands: [] };
    expect((await step(host, 'config', 'git init --quiet', git)).ok).toBe(true);
    // HOME is the workspace: what any program that writes files could leave there.
    await writeFile(path.join(workspace, '.gitconfig'), '[diff]\n\texternal = touch home-ran\n[core]\n\tpager = touch pager-ran\n');
    // The agent's own file, as if it had written it (its commands run as the workspace's owner).
    const owner = await stat(workspace);
    await chown(path.join(workspace, '.gitconfig'), owner.uid, owner.gid);
    const runbook = [
      'git config core.fsmonitor "touch fsmonitor-ran"',
      // The global file is read-only in the sandbox: this fails, and nothing of it could last anyway.
      '-git config --global diff.external "touch global-ran"',
      '-git diff --no-index .git/HEAD .gitconfig',
      '-git status --short',
    ].join('\n');
    const { result, events } = await run(host, runbook, { agentId: 'config', allowedTools: [git] });
    expect(result.isError).toBeFalsy();
    // git's own diff, not the external program of $HOME/.gitconfig or of the global file.
    expect(outputOf(events)).toContain('diff --git a/.git/HEAD b/.gitconfig');
    for (const marker of ['home-ran', 'global-ran', 'fsmonitor-ran']) expect(await exists(path.join(workspace, marker))).toBe(false);
    // What `git config --global` wrote lasted one command: the host writes the file afresh.
    expect(await readFile(gitConfigPath(workspace), 'utf8')).not.toContain('global-ran');

    // The way of writing it, git log --output, named here so that it runs: still not read.
    const named = { name: 'git', allowedCommands: ['-c', '--output'], blockedCommands: [] };
    const written = await run(
      host,
      [
        'git -c user.name=t -c user.email=t@example.com commit --allow-empty --quiet -m [diff] -m "external = touch log-output-ran"',
        'git log -1 --output=.gitconfig --format=%B',
        '-git diff --no-index .git/HEAD .gitconfig',
      ].join('\n'),
      { agentId: 'config', allowedTools: [named] },
    );
    expect(written.result.isError).toBeFalsy();
    expect(await readFile(path.join(workspace, '.gitconfig'), 'utf8')).toContain('[diff]\n\nexternal = touch log-output-ran\n');
    expect(outputOf(written.events)).toContain('diff --git a/.git/HEAD b/.gitconfig');
    expect(await exists(path.join(workspace, 'log-output-ran'))).toBe(false);
  });

  it('finds no repository above the workspace, even when the workspace root is inside one', async () => {
    const root = await tempDir();
    await promisify(execFile)('git', ['init', '--quiet', root]);
    const host = await startHost({ workspaceRoot: root });
    const { result } = await run(host, 'git rev-parse --show-toplevel', { agentId: 'inside', allowedTools: ['git'] });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toBe('line 1: `git rev-parse --show-toplevel` failed: exit code 128');
  });
});

async function workspaceOf(host: AgentHost, agentId: string): Promise<string> {
  return workspacePath(host.workspaceRoot, agentId);
}
