/**
 * The sandbox around agents' commands (sandbox.ts), tried as an attacker would: each program
 * below is granted with the very command that starts another program named in the grant, so
 * the allowlist lets it run and only the sandbox stands between the agent and the host. Real
 * processes on this machine (bwrap from the test harness, git, python3, make, find); each case
 * asserts on the host's filesystem and on what the run printed.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { AllowedTool, HostMessage } from '../lib/host-contract';
import { SANDBOX_META_KEY } from './sandbox';
import { addressFor, allowedBy, networkAllowlist } from './sandbox-network';
import { startAgentHost, type AgentHost, type AgentHostOptions } from './server';
import { workspacePath } from './workspaces';

const PROJECT_ROOT = path.resolve(__dirname, '..');

const hosts: AgentHost[] = [];
const clients: Client[] = [];
const cleanup: string[] = [];
const servers: Server[] = [];
const httpServers: HttpServer[] = [];

afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map((client) => client.close()));
  await Promise.allSettled(hosts.splice(0).map((host) => host.close()));
  await Promise.allSettled(
    [...servers.splice(0), ...httpServers.splice(0)].map((server) => new Promise((resolve) => server.close(resolve))),
  );
  await Promise.allSettled(cleanup.splice(0).map((file) => rm(file, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'sandbox-test-'));
  cleanup.push(dir);
  return dir;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** A host as `npm run dev` runs one: the shell engine, commands allowed, a data dir with its token beside. */
async function startHost(options: Partial<AgentHostOptions> = {}): Promise<{ host: AgentHost; dataDir: string; token: string }> {
  const dataDir = await tempDir();
  const token = `host-token-${randomUUID()}`;
  await writeFile(path.join(dataDir, 'host-token'), token, { mode: 0o600 });
  const host = await startAgentHost({ token, engine: 'shell', allowCommands: true, workspaceRoot: await tempDir(), dataDir, ...options });
  hosts.push(host);
  return { host, dataDir, token };
}

async function connect(host: AgentHost): Promise<{ client: Client; messages: HostMessage[] }> {
  const client = new Client({ name: 'sandbox-test', version: '0.0.0' });
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

let executions = 0;

async function run(host: AgentHost, prompt: string, allowedTools: AllowedTool[], agentId = 'agent-1') {
  const { client, messages } = await connect(host);
  const executionId = `sandbox-${++executions}`;
  const result = (await client.callTool({
    name: 'execute_prompt',
    arguments: { executionId, agentId, agentName: 'Attacker', prompt, allowedTools },
  })) as CallToolResult;
  const events = messages.filter((m) => m.executionId === executionId);
  return {
    result,
    text: result.content.map((block) => (block.type === 'text' ? block.text : '')).join(''),
    output: events.map((e) => (e.type === 'output' ? e.text : '')).join(''),
    errors: events.flatMap((e) =>
      e.type === 'tool_result' && typeof e.result === 'object' && e.result && 'error' in e.result ? [String(e.result.error)] : [],
    ),
  };
}

const grant = (name: string, allowedCommands: string[] = []): AllowedTool => ({ name, allowedCommands, blockedCommands: [] });

/**
 * What an escaped command would do: write to the host's /tmp, to the project's checkout and its
 * .git, to another agent's workspace; read the host's token, /etc/shadow and that workspace.
 * `inside-ran` (in its own workspace) shows the payload did run.
 */
async function attack(host: AgentHost, dataDir: string) {
  const tag = randomUUID();
  const victim = workspacePath(host.workspaceRoot, 'victim');
  await mkdir(victim, { recursive: true });
  await writeFile(path.join(victim, 'secret'), `victim-secret-${tag}`);
  const targets = {
    hostTmp: path.join(os.tmpdir(), `sandbox-escape-${tag}`),
    checkout: path.join(PROJECT_ROOT, `sandbox-escape-${tag}`),
    projectGit: path.join(PROJECT_ROOT, '.git', `sandbox-escape-${tag}`),
    victim: path.join(victim, `escape-${tag}`),
  };
  cleanup.push(...Object.values(targets));
  const script = [
    // Its output on stderr, its stdout kept open: git reading an upload-pack's stdout would end at
    // garbage or at its end, and the sandbox (the payload with it) when git ends.
    'exec 3>&1 1>&2',
    ...Object.values(targets).map((target) => `touch ${target}`),
    `cat ${path.join(dataDir, 'host-token')}`,
    'cat /etc/shadow',
    `cat ${path.join(victim, 'secret')}`,
    `ls ${host.workspaceRoot}`,
    'touch inside-ran',
  ].join('; ');
  return {
    script,
    workspace: workspacePath(host.workspaceRoot, 'agent-1'),
    async assertContained(output: string, token: string) {
      for (const [name, target] of Object.entries(targets)) expect([name, await exists(target)]).toEqual([name, false]);
      expect(output).not.toContain(token);
      expect(output).not.toContain(`victim-secret-${tag}`);
      const shadow = (await readFile('/etc/shadow', 'utf8')).split('\n')[0]!;
      expect(output).not.toContain(shadow);
      // Its own workspace is all there is in the workspace root.
      expect(output).not.toMatch(/^victim$/m);
    },
  };
}

/** Live processes whose command line is exactly `argv` (from /proc). */
async function pidsOf(argv: string[]): Promise<number[]> {
  const wanted = `${argv.join('\0')}\0`;
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if ((await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')) === wanted) pids.push(Number(entry));
  }
  return pids;
}

describe('the sandbox of agents’ commands', () => {
  // [case, the program granted (with the commands that start the payload named), the runbook (PAYLOAD is the attack), whether the payload runs]
  const cases: [string, AllowedTool, (payload: string) => string, boolean][] = [
    ['a git alias with !', grant('git', ['-c', 'x']), (payload) => `git -c alias.x="!${payload}" x`, true],
    ['git --upload-pack', grant('git', ['ls-remote', '--upload-pack']), (payload) => `git ls-remote --upload-pack="${payload}" .`, true],
    ['git -c core.pager', grant('git', ['-c', '-p', 'log']), (payload) => `git -c core.pager="${payload}" -p log`, false],
    [
      'git -c core.sshCommand',
      grant('git', ['-c', 'ls-remote']),
      (payload) => `git -c core.sshCommand="${payload}" ls-remote ssh://example.invalid/repo`,
      false,
    ],
    // The payload is the hook the agent wrote in hooks/ (below).
    [
      'git -c core.hooksPath',
      grant('git', ['-c', 'init', 'commit']),
      () => 'git init --quiet\ngit -c core.hooksPath=hooks -c user.name=a -c user.email=a@example.com commit --allow-empty -m x',
      true,
    ],
    ['python3 -c', grant('python3'), (payload) => `python3 -c "import subprocess; subprocess.run('${payload}', shell=True)"`, true],
    ['make with a recipe', grant('make'), () => 'make', true],
    ['find -exec', grant('find'), (payload) => `find . -maxdepth 0 -exec sh -c "${payload}" ;`, true],
  ];

  it.each(cases)(
    'contains %s: nothing outside the workspace changes, nothing of the host is read',
    async (_name, tool, runbook, payloadRuns) => {
      const { host, dataDir, token } = await startHost();
      const { script, workspace, assertContained } = await attack(host, dataDir);
      await mkdir(workspace, { recursive: true });
      // For make: the recipe is the payload (a Makefile the agent wrote, or a repository brought).
      await writeFile(path.join(workspace, 'Makefile'), `all:\n\t${script}\n`);
      // For the hooks: a hook in the directory core.hooksPath names.
      await mkdir(path.join(workspace, 'hooks'), { recursive: true });
      await writeFile(path.join(workspace, 'hooks', 'pre-commit'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
      const { output } = await run(host, `-${runbook(script).split('\n').join('\n-')}`, [tool]);
      await assertContained(output, token);
      // The payload ran (only the sandbox contained it), or git's own settings kept it from starting.
      expect(await exists(path.join(workspace, 'inside-ran'))).toBe(payloadRuns);
    },
  );

  it('contains a hook in a cloned repository', async () => {
    const { host, dataDir, token } = await startHost();
    const { script, workspace, assertContained } = await attack(host, dataDir);
    const tools = [grant('git', ['init', 'clone', '-c', 'commit', '-C', 'checkout'])];
    const setup = await run(
      host,
      'git init --quiet upstream\ngit -C upstream -c user.name=a -c user.email=a@example.com commit --quiet --allow-empty -m first\ngit clone --quiet upstream clone',
      tools,
    );
    expect(setup.result.isError).toBeFalsy();
    // What a repository could bring, or the agent could write: a hook in the clone.
    await writeFile(path.join(workspace, 'clone', '.git', 'hooks', 'post-checkout'), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    const { output } = await run(host, '-git -C clone checkout --quiet -b topic', tools);
    await assertContained(output, token);
  });

  it('gives python3 a /tmp of its own, no /etc/shadow, no host token and no loopback of the host', async () => {
    const { host, dataDir, token } = await startHost();
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      socket.end('hello from the host\n');
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const canary = path.join(os.tmpdir(), `sandbox-tmp-${randomUUID()}`);
    cleanup.push(canary);
    const py = (code: string) => `-python3 -c "${code}"`;
    const { output } = await run(
      host,
      [
        py(`open('${canary}', 'w').write('x'); print('wrote', open('${canary}').read())`),
        py(`print(open('/etc/shadow').read())`),
        py(`print(open('${path.join(dataDir, 'host-token')}').read())`),
        py(`import socket; s = socket.create_connection(('127.0.0.1', ${port}), timeout=5); print('connected', s.recv(100))`),
      ].join('\n'),
      [grant('python3')],
    );
    // The write went to the sandbox's own /tmp, gone with it.
    expect(output).toContain('wrote x');
    expect(await exists(canary)).toBe(false);
    expect(output).toMatch(/PermissionError: \[Errno 13\] Permission denied: '\/etc\/shadow'/);
    expect(output).toContain(`FileNotFoundError: [Errno 2] No such file or directory: '${path.join(dataDir, 'host-token')}'`);
    expect(output).not.toContain(token);
    expect(output).toMatch(/ConnectionRefusedError|Network is unreachable/);
    expect(connections).toBe(0);
  });

  it('shows a directory of HOST_SANDBOX_READ_PATHS read-only, but never the host’s data dir inside it', async () => {
    const outer = await tempDir();
    await chmod(outer, 0o755);
    await writeFile(path.join(outer, 'shared.txt'), 'shared with agents');
    const dataDir = path.join(outer, 'host-data');
    await mkdir(dataDir, { mode: 0o755 });
    await writeFile(path.join(dataDir, 'host-token'), 'the-host-secret', { mode: 0o644 });
    const host = await startAgentHost({
      token: 't',
      engine: 'shell',
      allowCommands: true,
      workspaceRoot: await tempDir(),
      dataDir,
      sandbox: { readPaths: [outer] },
    });
    hosts.push(host);
    const { output, errors } = await run(
      host,
      [
        `-python3 -c "print(open('${path.join(outer, 'shared.txt')}').read())"`,
        `-python3 -c "print(open('${path.join(dataDir, 'host-token')}').read())"`,
        `-python3 -c "open('${path.join(outer, 'new')}', 'w')"`,
      ].join('\n'),
      [grant('python3')],
    );
    expect(output).toContain('shared with agents');
    expect(output).not.toContain('the-host-secret');
    expect(output).toContain('Read-only file system');
    expect(errors).toEqual(['exit code 1', 'exit code 1']);
  });

  it('writes nowhere but the workspace and its private /tmp: the sandbox’s own root and /dev are read-only', async () => {
    const { host } = await startHost();
    const py = (code: string) => `-python3 -c "${code}"`;
    const { output, errors } = await run(
      host,
      [
        py("open('/made', 'w')"),
        py("open('/dev/made', 'w')"),
        py("open('/usr/made', 'w')"),
        py("open('/tmp/made', 'w').write('x'); open('/dev/shm/made', 'w').write('x'); open('/dev/null', 'w').write('x'); print('ok')"),
      ].join('\n'),
      [grant('python3')],
    );
    expect(errors).toEqual(['exit code 1', 'exit code 1', 'exit code 1']);
    expect(output.match(/Read-only file system/g)).toHaveLength(3);
    expect(output).toContain('ok');
  });

  it('runs as a user that is not root, with no capabilities and no new privileges', async () => {
    const { host } = await startHost();
    const { output } = await run(host, "python3 -c \"import os; print('uid', os.getuid()); print(open('/proc/self/status').read())\"", [
      grant('python3'),
    ]);
    expect(output).not.toMatch(/^uid 0$/m);
    expect(output).toMatch(/^CapEff:\s+0+$/m);
    expect(output).toMatch(/^NoNewPrivs:\s+1$/m);
  });

  it('keeps the project’s repository out of a workspace’s git, even for a workspace root inside it', async () => {
    const root = await tempDir();
    await promisify(execFile)('git', ['init', '--quiet', root]);
    const { host } = await startHost({ workspaceRoot: root });
    const tools = [grant('git', ['rev-parse', '-C', 'status'])];
    const inside = await run(host, '-git rev-parse --show-toplevel\n-git -C ' + PROJECT_ROOT + ' status', tools);
    expect(inside.errors).toEqual(['exit code 128', 'exit code 128']);
    expect(inside.output).toContain('not a git repository');
    expect(inside.output).toContain(`cannot change to '${PROJECT_ROOT}'`);
  });

  it('ends a daemon the command started: nothing of it is left after the run', async () => {
    const { host } = await startHost();
    const seconds = String(900_000 + Math.floor(Math.random() * 99_999));
    const { result } = await run(
      host,
      `python3 -c "import subprocess; subprocess.Popen(['sleep', '${seconds}'], start_new_session=True); print('started')"`,
      [grant('python3')],
    );
    expect(result.isError).toBeFalsy();
    expect(await pidsOf(['sleep', seconds])).toEqual([]);
  });

  it('stops a fork bomb at the process limit, with a clear reason', async () => {
    const { host } = await startHost({ sandbox: { limits: { maxProcesses: 32 } } });
    const started = Date.now();
    const { result, text, errors } = await run(
      host,
      `python3 -c "exec('import os\\nwhile True:\\n  try: os.fork()\\n  except OSError: pass')"`,
      [grant('python3')],
    );
    expect(result.isError).toBe(true);
    expect(errors).toEqual(["stopped at the sandbox's process limit (32 processes at once, HOST_SANDBOX_MAX_PROCESSES)"]);
    expect(text).toContain("failed: stopped at the sandbox's process limit");
    // Stopped by the limit, not by the run's wall time (30 min).
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('stops a memory hog at the memory limit, with a clear reason', async () => {
    const { host } = await startHost({ sandbox: { limits: { memoryMb: 128 } } });
    const { result, errors } = await run(host, `python3 -c "exec('hog = []\\nwhile True: hog.append(bytearray(8 * 1024 * 1024))')"`, [
      grant('python3'),
    ]);
    expect(result.isError).toBe(true);
    expect(errors).toEqual(['out of memory: the sandbox allows 128 MiB (HOST_SANDBOX_MEMORY_MB)']);
  });

  it('stops a process past its CPU time, and a file past the file size limit, each with a clear reason', async () => {
    const { host } = await startHost({ sandbox: { limits: { cpuSeconds: 1, fileSizeMb: 1 } } });
    const { errors } = await run(
      host,
      ['-python3 -c "while True: pass"', "-python3 -c \"open('big', 'wb').write(b'x' * 4 * 1024 * 1024)\""].join('\n'),
      [grant('python3')],
    );
    expect(errors).toEqual([
      "stopped at the sandbox's CPU time limit (1 s per process, HOST_SANDBOX_CPU_SECONDS)",
      "a file reached the sandbox's file size limit (1 MiB, HOST_SANDBOX_FILE_SIZE_MB)",
    ]);
  });
});

describe('a host that cannot sandbox', () => {
  async function provision(host: AgentHost): Promise<CallToolResult> {
    const { client } = await connect(host);
    return (await client.callTool({
      name: 'provision_agent',
      arguments: { agentId: 'a', name: 'A', role: 'WORKER', capabilities: [] },
    })) as CallToolResult;
  }

  it('refuses provision_agent with the reason and the fix; HOST_SANDBOX=off provisions, runs unsandboxed and says so in tools/list', async () => {
    const missing = path.join(await tempDir(), 'no-bwrap');
    const { host } = await startHost({ sandbox: { bwrapPath: missing } });
    const refused = await provision(host);
    expect(refused.isError).toBe(true);
    const text = (refused.content[0] as { text: string }).text;
    expect(text).toContain("this host cannot sandbox agents' commands");
    expect(text).toContain(`${missing} is not an executable file`);
    expect(text).toContain('apt-get install bubblewrap');
    expect(text).toContain('HOST_SANDBOX=off');
    const { client } = await connect(host);
    const listed = await client.listTools();
    expect(listed.tools.find((t) => t.name === 'execute_prompt')?._meta).toEqual({ [SANDBOX_META_KEY]: 'bwrap' });

    const { host: off } = await startHost({ sandbox: { mode: 'off' } });
    expect((await provision(off)).isError).toBeFalsy();
    const offTools = await (await connect(off)).client.listTools();
    expect(offTools.tools.find((t) => t.name === 'execute_prompt')?._meta).toEqual({ [SANDBOX_META_KEY]: 'off' });
    // Unsandboxed, the same python3 reaches the host's /tmp: what the cases above are contained from.
    const canary = path.join(os.tmpdir(), `sandbox-off-${randomUUID()}`);
    cleanup.push(canary);
    await run(off, `python3 -c "open('${canary}', 'w').write('x')"`, [grant('python3')]);
    expect(await exists(canary)).toBe(true);
  });

  it('makes a workspace under a private directory reachable for the sandbox’s user', async () => {
    const root = await tempDir();
    await chmod(root, 0o700);
    const { host } = await startHost({ workspaceRoot: root });
    const { result, output } = await run(host, "python3 -c \"open('made', 'w').write('x'); print('ok')\"", [grant('python3')]);
    expect(result.isError).toBeFalsy();
    expect(output).toContain('ok');
    expect(await exists(path.join(workspacePath(root, 'agent-1'), 'made'))).toBe(true);
  });
});

describe('an agent’s network allowlist', () => {
  it('reads network:<host> capabilities: a host, *.domain, a port, an address; anything else is refused', () => {
    expect(
      networkAllowlist([
        'general',
        'network:GitHub.com',
        'network:*.pypi.org',
        'network:127.0.0.1:8080',
        'network:[::1]:9',
        'network:example.com:*',
      ]),
    ).toEqual([
      { text: 'GitHub.com', host: 'github.com', wildcard: false, literal: false },
      { text: '*.pypi.org', host: 'pypi.org', wildcard: true, literal: false },
      { text: '127.0.0.1:8080', host: '127.0.0.1', wildcard: false, port: 8080, literal: true },
      { text: '[::1]:9', host: '::1', wildcard: false, port: 9, literal: true },
      { text: 'example.com:*', host: 'example.com', wildcard: false, port: '*', literal: false },
    ]);
    for (const bad of [
      'network:',
      'network:exa mple.com',
      'network:example.com:99999',
      'network:*.10.0.0.1',
      'network:http://example.com',
    ]) {
      expect(() => networkAllowlist([bad])).toThrow(`capability ${bad}`);
    }
    const list = networkAllowlist(['network:github.com', 'network:*.pypi.org', 'network:127.0.0.1:8080']);
    expect(allowedBy(list, 'github.com', 443)?.text).toBe('github.com');
    expect(allowedBy(list, 'github.com', 22)).toBeUndefined();
    expect(allowedBy(list, 'api.github.com', 443)).toBeUndefined();
    expect(allowedBy(list, 'files.pypi.org', 443)?.text).toBe('*.pypi.org');
    expect(allowedBy(list, 'pypi.org', 443)).toBeUndefined();
    expect(allowedBy(list, '127.0.0.1', 8080)?.text).toBe('127.0.0.1:8080');
    expect(allowedBy(list, '127.0.0.1', 8081)).toBeUndefined();
  });

  it('never lets an allowed name reach loopback, link-local or a metadata address (DNS rebinding); an allowed address may', async () => {
    const [named] = networkAllowlist(['network:rebind.example']);
    const resolveTo = (address: string) => async () => [{ address }];
    for (const address of ['127.0.0.1', '::1', '169.254.169.254', '0.0.0.0']) {
      await expect(addressFor('rebind.example', named!, resolveTo(address))).rejects.toThrow(
        'resolves to no address the allowlist may reach',
      );
    }
    await expect(addressFor('rebind.example', named!, resolveTo('140.82.112.3'))).resolves.toBe('140.82.112.3');
    const [literal] = networkAllowlist(['network:127.0.0.1:8080']);
    await expect(addressFor('127.0.0.1', literal!, resolveTo('203.0.113.1'))).resolves.toBe('127.0.0.1');
  });

  async function provisionWith(host: AgentHost, capabilities: string[]): Promise<CallToolResult> {
    const { client } = await connect(host);
    return (await client.callTool({
      name: 'provision_agent',
      arguments: { agentId: 'agent-1', name: 'Fetcher', role: 'WORKER', capabilities },
    })) as CallToolResult;
  }

  /** A web server on loopback that counts its requests, and serves a bare repository over git's dumb HTTP protocol. */
  async function webServer(root: string) {
    let requests = 0;
    const server = createHttpServer((req, res) => {
      requests++;
      const file = path.join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname));
      readFile(file).then(
        (body) => res.writeHead(200).end(body),
        () => res.writeHead(req.url === '/' ? 200 : 404).end(req.url === '/' ? 'hello from the host\n' : ''),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    httpServers.push(server);
    return { port: (server.address() as { port: number }).port, requests: () => requests };
  }

  it('reaches only the hosts of its allowlist, through the host’s proxy: curl and git clone of an allowed host work, nothing else does', async () => {
    const repos = await tempDir();
    const exec = promisify(execFile);
    await exec('git', ['init', '--quiet', '--bare', path.join(repos, 'repo.git')]);
    const work = path.join(repos, 'work');
    await exec('git', ['init', '--quiet', work]);
    await writeFile(path.join(work, 'README'), 'cloned through the proxy\n');
    await exec('git', ['-C', work, 'add', 'README']);
    await exec('git', ['-C', work, '-c', 'user.name=t', '-c', 'user.email=t@example.com', 'commit', '--quiet', '-m', 'first']);
    await exec('git', ['-C', work, 'push', '--quiet', path.join(repos, 'repo.git'), 'HEAD:refs/heads/main']);
    await exec('git', ['-C', path.join(repos, 'repo.git'), 'symbolic-ref', 'HEAD', 'refs/heads/main']);
    await exec('git', ['-C', path.join(repos, 'repo.git'), 'update-server-info']);
    const allowed = await webServer(repos);
    const other = await webServer(repos);

    const { host } = await startHost();
    expect((await provisionWith(host, [`network:127.0.0.1:${allowed.port}`])).isError).toBeFalsy();
    const tools = [grant('curl'), grant('git', ['clone']), grant('python3')];
    const { output, errors } = await run(
      host,
      [
        `curl -sS http://127.0.0.1:${allowed.port}/`,
        `-curl -sS --fail-with-body http://127.0.0.1:${other.port}/`,
        `-curl -sS --fail-with-body --proxytunnel http://127.0.0.1:${other.port}/`,
        `git clone --quiet http://127.0.0.1:${allowed.port}/repo.git clone`,
        // Not through the proxy: there is no network to go to.
        `-python3 -c "import socket; socket.create_connection(('127.0.0.1', ${allowed.port}), timeout=5)"`,
      ].join('\n'),
      tools,
    );
    expect(output).toContain('hello from the host');
    expect(output).toContain(`blocked by the agent's network allowlist: 127.0.0.1:${other.port}`);
    expect(other.requests()).toBe(0);
    expect(await readFile(path.join(workspacePath(host.workspaceRoot, 'agent-1'), 'clone', 'README'), 'utf8')).toBe(
      'cloned through the proxy\n',
    );
    expect(output).toMatch(/ConnectionRefusedError|Network is unreachable/);
    expect(errors).toEqual(['exit code 22', 'exit code 56', 'exit code 1']);

    // The same agent without the capability: nothing.
    const before = allowed.requests();
    expect((await provisionWith(host, [])).isError).toBeFalsy();
    const none = await run(
      host,
      `-curl -sS http://127.0.0.1:${allowed.port}/\n-git clone --quiet http://127.0.0.1:${allowed.port}/repo.git again`,
      tools,
    );
    expect(none.errors).toHaveLength(2);
    expect(allowed.requests()).toBe(before);
  });

  it('refuses a capability that is not a host at provision_agent', async () => {
    const { host } = await startHost();
    const refused = await provisionWith(host, ['network:https://example.com/']);
    expect(refused.isError).toBe(true);
    expect((refused.content[0] as { text: string }).text).toContain('capability network:https://example.com/');
  });
});

describe('the tool commands in a sandbox (HOST_SANDBOX_TOOL_COMMANDS)', () => {
  it('runs install_tool and check_tool in an empty directory of their own: nothing of the host changes, check_tool sees what agents see', async () => {
    const canary = path.join(os.tmpdir(), `sandbox-install-${randomUUID()}`);
    cleanup.push(canary);
    const { host } = await startHost({ sandbox: { toolCommands: true } });
    const { client } = await connect(host);
    const install = (await client.callTool({
      name: 'install_tool',
      arguments: { name: 'x', installCommand: `touch ${canary} && id -u && pwd`, versionCommand: 'git --version' },
    })) as CallToolResult;
    expect(install.isError).toBeFalsy();
    expect(await exists(canary)).toBe(false);
    const log = (install.structuredContent as { log: string; version?: string }).log;
    expect(log).not.toMatch(/^0$/m);
    expect(log).toMatch(/mcp-fleet-tool-command-/);
    expect((install.structuredContent as { version?: string }).version).toMatch(/^\d+\.\d+/);
    const check = (await client.callTool({
      name: 'check_tool',
      arguments: { name: 'x', versionCommand: `cat ${path.join(PROJECT_ROOT, 'package.json')}` },
    })) as CallToolResult;
    expect(check.structuredContent).toMatchObject({ installed: false });
  });
});
