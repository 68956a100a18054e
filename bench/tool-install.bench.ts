/**
 * Install round trip: `POST /api/tools/server/:id/install` with Accept: text/event-stream, until
 * the stream reports INSTALLED (API → toolInstall workflow → activity → install_tool +
 * check_tool on the host → row + event → SSE), against a raw MCP client calling install_tool +
 * check_tool on the same host over one open connection (as the worker's pool does). A no-op
 * tool, so what is measured is the platform, not the package manager. p50 over 50 installs
 * each, interleaved. Target: the API's p50 at most 60 ms above the raw p50.
 */
import { randomUUID } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Organization, ToolDefinition } from '../entities';
import { startAgentHost } from '../host/server';
import { hostToolCall } from '../lib/host-contract';
import { startBenchStack } from './stack';

const INSTALLS = Number(process.argv.find((a) => a.startsWith('--installs='))?.slice(11) ?? 50);
const WARMUP = 5;
const TARGET_ADDED_MS = 60;

const NOOP = { installCommand: 'true', uninstallCommand: 'true', versionCommand: 'echo "noop 1.0.0"', versionRegex: String.raw`noop (\S+)` };

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export async function benchToolInstall(): Promise<{ pass: boolean }> {
  const host = await startAgentHost({ token: `bench-${randomUUID()}`, allowCommands: true });
  const stack = await startBenchStack();
  const raw = new Client({ name: 'bench', version: '0' });
  try {
    await stack.startWorker();
    const base = stack.api.url;
    const post = (path: string, body: unknown, token?: string, accept = 'application/json') =>
      fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', accept, ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    const reg = (await (await post('/api/auth/register', { email: 'bench-tools@example.test', password: 'bench password 123', name: 'Bench', organizationName: 'Bench' })).json()) as {
      accessToken: string;
      organization: { id: string };
    };
    const server = (await (await post('/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, reg.accessToken)).json()) as { id: string };

    // One catalog entry per install: each workflow id (tool-<server>-<tool>) is then free at once.
    const em = stack.deps.orm.em.fork() as EntityManager;
    const tools = Array.from({ length: INSTALLS + WARMUP }, (_, i) =>
      em.create(ToolDefinition, { organization: em.getReference(Organization, reg.organization.id), name: `noop-${i}`, displayName: `No-op ${i}`, category: 'cli', builtin: false, ...NOOP }),
    );
    await em.flush();

    let next = 0;
    const viaApi = async () => {
      const tool = tools[next++]!;
      const res = await post(`/api/tools/server/${server.id}/install`, { toolId: tool.id }, reg.accessToken, 'text/event-stream');
      const text = await res.text();
      const statuses = [...text.matchAll(/"status":"([A-Z_]+)"/g)].map((m) => m[1]);
      if (statuses.at(-1) !== 'INSTALLED') throw new Error(`install ended ${res.status} ${text}`);
    };
    await raw.connect(new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }));
    const direct = async () => {
      const installed = await raw.callTool(hostToolCall('install_tool', { name: 'noop', installCommand: NOOP.installCommand }));
      const checked = await raw.callTool(hostToolCall('check_tool', { name: 'noop', versionCommand: NOOP.versionCommand, versionRegex: NOOP.versionRegex }));
      if (installed.isError || (checked.structuredContent as { version?: string }).version !== '1.0.0') throw new Error('raw install failed');
    };

    for (let i = 0; i < WARMUP; i++) {
      await viaApi();
      await direct();
    }
    const api: number[] = [];
    const sdk: number[] = [];
    // Interleaved, so machine noise hits both series alike.
    for (let i = 0; i < INSTALLS; i++) {
      api.push(await timed(viaApi));
      sdk.push(await timed(direct));
    }
    const added50 = percentile(api, 50) - percentile(sdk, 50);
    const line = (name: string, xs: number[]) => `${name.padEnd(44)} p50 ${percentile(xs, 50).toFixed(1).padStart(6)} ms   p95 ${percentile(xs, 95).toFixed(1).padStart(6)} ms`;
    process.stdout.write(
      [
        `tool-install bench: ${INSTALLS} installs each, interleaved`,
        line('POST /api/tools/server/:id/install → INSTALLED', api),
        line('raw MCP install_tool + check_tool', sdk),
        `the install workflow adds ${added50.toFixed(1)} ms at p50 (target <= ${TARGET_ADDED_MS} ms); ratio p50 ${(percentile(api, 50) / percentile(sdk, 50)).toFixed(2)}`,
        '',
      ].join('\n'),
    );
    return { pass: added50 <= TARGET_ADDED_MS };
  } finally {
    await raw.close().catch(() => undefined);
    await stack.stop();
    await host.close();
  }
}

if (require.main === module) {
  benchToolInstall()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
