/**
 * POST /api/servers/:id/test (API → Temporal workflow → worker activity → MCP server and back)
 * against a raw SDK client doing initialize + ping + tools/list on the same server, 100 calls
 * each, in the same run. Target: the workflow round trip adds at most 40 ms at p50.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startMcpServer } from '../test/mcp-servers';
import { compareRoundTrips } from './round-trip';
import { startBenchStack } from './stack';

const CALLS = Number(process.argv.find((a) => a.startsWith('--calls='))?.slice(8) ?? 100);

export async function benchServerTest(): Promise<{ pass: boolean }> {
  const host = await startMcpServer();
  const stack = await startBenchStack();
  try {
    await stack.startWorker();
    const base = stack.api.url;
    const post = (path: string, body: unknown, token?: string) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    const reg = (await (
      await post('/api/auth/register', {
        email: 'bench@example.test',
        password: 'bench password 123',
        name: 'Bench',
        organizationName: 'Bench',
      })
    ).json()) as { accessToken: string };
    const server = (await (
      await post('/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, reg.accessToken)
    ).json()) as { id: string };

    const viaApi = async () => {
      const res = await post(`/api/servers/${server.id}/test`, {}, reg.accessToken);
      const body = (await res.json()) as { status: string };
      if (body.status !== 'ONLINE') throw new Error(`unexpected status ${JSON.stringify(body)}`);
    };
    const raw = async () => {
      const client = new Client({ name: 'bench', version: '0' });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
      );
      await client.ping();
      await client.listTools();
      await client.close();
    };

    return await compareRoundTrips({
      name: 'server-test bench',
      count: CALLS,
      warmup: 10,
      platform: { label: 'POST /api/servers/:id/test', run: viaApi },
      baseline: { label: 'raw SDK initialize+ping+listTools', run: raw },
      adds: 'workflow round trip adds',
      targetAddedMs: 40,
    });
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
