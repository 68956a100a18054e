/**
 * POST /api/servers/:id/test (API → Temporal workflow → worker activity → MCP server and back)
 * against a raw SDK client doing initialize + ping + tools/list on the same server, 100 calls
 * each, in the same run. Target: the workflow round trip adds at most 40 ms at p50.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startMcpServer } from '../test/mcp-servers';
import { startBenchStack } from './stack';

const CALLS = Number(process.argv.find((a) => a.startsWith('--calls='))?.slice(8) ?? 100);

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export async function benchServerTest(): Promise<{ pass: boolean }> {
  const host = await startMcpServer();
  const stack = await startBenchStack();
  try {
    await stack.startWorker();
    const base = stack.api.url;
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body) });
    const reg = (await (await post('/api/auth/register', { email: 'bench@example.test', password: 'bench password 123', name: 'Bench', organizationName: 'Bench' })).json()) as { accessToken: string };
    const server = (await (await post('/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, reg.accessToken)).json()) as { id: string };

    const viaApi = async () => {
      const res = await post(`/api/servers/${server.id}/test`, {}, reg.accessToken);
      const body = (await res.json()) as { status: string };
      if (body.status !== 'ONLINE') throw new Error(`unexpected status ${JSON.stringify(body)}`);
    };
    const raw = async () => {
      const client = new Client({ name: 'bench', version: '0' });
      await client.connect(new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }));
      await client.ping();
      await client.listTools();
      await client.close();
    };

    for (let i = 0; i < 10; i++) {
      await viaApi();
      await raw();
    }
    const api: number[] = [];
    const sdk: number[] = [];
    // Interleaved, so machine noise hits both series alike.
    for (let i = 0; i < CALLS; i++) {
      api.push(await timed(viaApi));
      sdk.push(await timed(raw));
    }
    const added50 = percentile(api, 50) - percentile(sdk, 50);
    const line = (name: string, xs: number[]) => `${name.padEnd(34)} p50 ${percentile(xs, 50).toFixed(1).padStart(6)} ms   p95 ${percentile(xs, 95).toFixed(1).padStart(6)} ms`;
    process.stdout.write(
      [
        `server-test bench: ${CALLS} calls each, interleaved`,
        line('POST /api/servers/:id/test', api),
        line('raw SDK initialize+ping+listTools', sdk),
        `workflow round trip adds ${added50.toFixed(1)} ms at p50 (target <= 40 ms); ratio p50 ${(percentile(api, 50) / percentile(sdk, 50)).toFixed(2)}`,
        '',
      ].join('\n'),
    );
    return { pass: added50 <= 40 };
  } finally {
    await stack.stop();
    await host.close();
  }
}

if (require.main === module) {
  benchServerTest()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
