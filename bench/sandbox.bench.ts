/**
 * What the sandbox of agents' commands costs (host/sandbox.ts), measured against the same work
 * unsandboxed in the same run:
 * 1. start overhead of one command: `true` started in a sandbox (the host's own wrap: bwrap,
 *    its mounts and namespaces, prlimit) against `true` started directly, p50 over 200 each.
 *    Target: at most 15 ms added at p50.
 * 2. the same start with a network allowlist: the host's proxy for the command and the bridge
 *    (node) inside, against a start without. Target: at most 60 ms more.
 * 3. the shell engine's run time: a runbook of 10 commands through execute_prompt on a host
 *    that sandboxes them against one that does not (HOST_SANDBOX=off), p50 over 20 runs each.
 *    Target: at most 15 ms added per command.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { findBwrap } from '../dev/bwrap';
import { hostToolCall } from '../lib/host-contract';
import { createSandbox } from '../host/sandbox';
import { DEFAULT_SANDBOX_SETTINGS } from '../host/sandbox-settings';
import { networkAllowlist, startNetworkProxy } from '../host/sandbox-network';
import { startAgentHost, type AgentHost } from '../host/server';
import { agentEnvironment } from '../host/runner';
import { compareRoundTrips } from './round-trip';

const STARTS = Number(process.argv.find((a) => a.startsWith('--starts='))?.slice(9) ?? 200);
const RUNS = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? 20);
const TARGET_START_MS = 15;
const TARGET_NETWORK_MS = 60;
const RUNBOOK = [
  'git --version',
  'python3 -c pass',
  'ls',
  'git init --quiet',
  'git status --short',
  'python3 -c "print(1 + 1)"',
  'ls -la',
  'git --version',
  'python3 -c pass',
  'ls',
];

function runToEnd(
  file: string,
  args: string[],
  options: { env: NodeJS.ProcessEnv; cwd: string; uid?: number; gid?: number },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: 'ignore',
      ...(options.uid !== undefined ? { uid: options.uid, gid: options.gid } : {}),
    });
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${file} ended with ${code}`))));
  });
}

async function connect(host: AgentHost): Promise<Client> {
  const client = new Client({ name: 'bench', version: '0' });
  await client.connect(
    new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
  );
  return client;
}

export async function benchSandbox(): Promise<{ pass: boolean }> {
  const bwrap = await findBwrap();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-bench-sandbox-'));
  const workspace = path.join(dir, 'workspace');
  // The same programs for both sides: the system's (a PATH entry the sandbox's user cannot read,
  // such as a version manager's shims under /root, is left out of a sandbox only).
  const hostEnv = { PATH: '/usr/local/bin:/usr/bin:/bin', BWRAP_PATH: bwrap.path };
  const sandbox = createSandbox(DEFAULT_SANDBOX_SETTINGS, { hidden: [dir], hostEnv });
  const hosts = await Promise.all([
    startAgentHost({
      token: `bench-${randomUUID()}`,
      engine: 'shell',
      allowCommands: true,
      workspaceRoot: path.join(dir, 'sandboxed'),
      env: hostEnv,
    }),
    startAgentHost({
      token: `bench-${randomUUID()}`,
      engine: 'shell',
      allowCommands: true,
      workspaceRoot: path.join(dir, 'unsandboxed'),
      env: hostEnv,
      sandbox: { mode: 'off' },
    }),
  ]);
  const clients = await Promise.all(hosts.map(connect));
  try {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(workspace, { recursive: true });
    await sandbox.prepareWorkspace(dir, workspace);
    const env = agentEnvironment(workspace, hostEnv);
    const unusable = await sandbox.unusable();
    if (unusable) throw new Error(unusable);

    const starts = await compareRoundTrips({
      name: 'sandbox bench: one command (true) started',
      count: STARTS,
      warmup: 10,
      platform: {
        label: 'in a sandbox (bwrap + prlimit)',
        run: async () => {
          const wrapped = await sandbox.wrap(['true'], { workspace, env });
          await runToEnd(wrapped.file, wrapped.args, {
            env: wrapped.env,
            cwd: '/',
            ...(wrapped.uid !== undefined ? { uid: wrapped.uid, gid: wrapped.gid } : {}),
          });
        },
      },
      baseline: { label: 'directly', run: () => runToEnd('true', [], { env, cwd: workspace }) },
      adds: 'the sandbox adds',
      targetAddedMs: TARGET_START_MS,
    });

    const withNetwork = await compareRoundTrips({
      name: 'sandbox bench: one command (true) started with a network allowlist',
      count: Math.ceil(STARTS / 4),
      warmup: 5,
      platform: {
        label: 'in a sandbox, with its proxy and bridge',
        run: async () => {
          const proxy = await startNetworkProxy(networkAllowlist(['network:example.com']), sandbox.proxySocketPath());
          try {
            const wrapped = await sandbox.wrap(['true'], { workspace, env, proxySocket: proxy.socket });
            await runToEnd(wrapped.file, wrapped.args, {
              env: wrapped.env,
              cwd: '/',
              ...(wrapped.uid !== undefined ? { uid: wrapped.uid, gid: wrapped.gid } : {}),
            });
          } finally {
            await proxy.close();
          }
        },
      },
      baseline: {
        label: 'in a sandbox, no network',
        run: async () => {
          const wrapped = await sandbox.wrap(['true'], { workspace, env });
          await runToEnd(wrapped.file, wrapped.args, {
            env: wrapped.env,
            cwd: '/',
            ...(wrapped.uid !== undefined ? { uid: wrapped.uid, gid: wrapped.gid } : {}),
          });
        },
      },
      adds: 'the network allowlist adds',
      targetAddedMs: TARGET_NETWORK_MS,
    });

    let runs = 0;
    const runbook = (client: Client) => async () => {
      const result = await client.callTool(
        hostToolCall('execute_prompt', {
          executionId: `bench-${++runs}`,
          agentId: `agent-${runs % 4}`,
          agentName: 'bench',
          prompt: RUNBOOK.join('\n'),
          allowedTools: ['git', 'python3', 'ls'],
        }),
      );
      if (result.isError) throw new Error(`the runbook failed: ${JSON.stringify(result.content)}`);
    };
    const shell = await compareRoundTrips({
      name: `sandbox bench: shell engine, a runbook of ${RUNBOOK.length} commands`,
      count: RUNS,
      warmup: 2,
      platform: { label: 'HOST_SANDBOX=bwrap', run: runbook(clients[0]!) },
      baseline: { label: 'HOST_SANDBOX=off', run: runbook(clients[1]!) },
      adds: 'the sandbox adds',
      targetAddedMs: TARGET_START_MS * RUNBOOK.length,
    });
    return { pass: starts.pass && withNetwork.pass && shell.pass };
  } finally {
    await Promise.allSettled(clients.map((client) => client.close()));
    await Promise.allSettled(hosts.map((host) => host.close()));
    sandbox.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchSandbox()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
