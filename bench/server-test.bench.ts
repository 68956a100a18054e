/**
 * POST /api/servers/:id/test (API → Temporal workflow → worker activity → MCP server and back)
 * against a raw SDK client doing initialize + ping + tools/list on the same server, 100 calls
 * each, in the same run. Target: the workflow round trip adds at most 30 ms at p50. Then where
 * the API's time went, step by step, from the bench's clock and the workflows' histories.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { startMcpServer } from '../test/mcp-servers';
import { eventMs, firstEvent, lastEvent, localActivityScheduledMs, printBreakdown, type TimedRun } from './history-breakdown';
import { compareRoundTrips } from './round-trip';
import { startBenchStack } from './stack';
import { SERVER_CHECK_WORKFLOW } from '../workflows/contracts/server-check';

const CALLS = Number(process.argv.find((a) => a.startsWith('--calls='))?.slice(8) ?? 100);
const TARGET_ADDED_MS = 30;

export async function benchServerTest(): Promise<{ pass: boolean }> {
  const host = await startMcpServer();
  // No metrics endpoints: another bench or a dev API on this machine may hold their ports.
  const stack = await startBenchStack({ METRICS_PORT: '0', WORKER_METRICS_PORT: '0', WORKER_TEMPORAL_METRICS_PORT: '0' });
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

    const timed: Omit<TimedRun, 'workflowId'>[] = [];
    const viaApi = async () => {
      const sentAt = Date.now();
      const res = await post(`/api/servers/${server.id}/test`, {}, reg.accessToken);
      const body = (await res.json()) as { status: string };
      timed.push({ sentAt, answeredAt: Date.now() });
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

    const verdict = await compareRoundTrips({
      name: 'server-test bench',
      count: CALLS,
      warmup: 10,
      platform: { label: 'POST /api/servers/:id/test', run: viaApi },
      baseline: { label: 'raw SDK initialize+ping+listTools', run: raw },
      adds: 'workflow round trip adds',
      targetAddedMs: TARGET_ADDED_MS,
    });
    // At Temporal's default transfer-queue read rate a dev server holds each start above about 10
    // workflows/s (lib/temporal.ts DEV_SERVER_DYNAMIC_CONFIG): how close these calls came to it.
    const measured = timed.slice(-CALLS);
    const spanS = (measured.at(-1)!.answeredAt - measured[0]!.sentAt) / 1000;
    process.stdout.write(`serverCheck workflows started at ${(measured.length / spanS).toFixed(1)}/s during the measured calls\n`);
    await printBreakdown(
      stack.deps.temporal.client,
      'where POST /test spends its time',
      await withWorkflows(stack, timed.slice(-CALLS)),
      (events) => {
        const marker = firstEvent(events, 'MarkerRecorded');
        return [
          ['workflow started', eventMs(firstEvent(events, 'WorkflowExecutionStarted'))],
          ['task started on worker', eventMs(firstEvent(events, 'WorkflowTaskStarted'))],
          ['local activity scheduled', localActivityScheduledMs(marker)],
          ['task completed (check recorded)', eventMs(lastEvent(events, 'WorkflowTaskCompleted'))],
          ['workflow completed', eventMs(firstEvent(events, 'WorkflowExecutionCompleted'))],
        ];
      },
    );
    return verdict;
  } finally {
    await stack.stop();
    await host.close();
  }
}

/** Each run's serverCheck workflow: the one Temporal started while the request was out. */
async function withWorkflows(
  stack: Awaited<ReturnType<typeof startBenchStack>>,
  runs: Omit<TimedRun, 'workflowId'>[],
): Promise<TimedRun[]> {
  const started: Array<{ workflowId: string; at: number }> = [];
  for await (const wf of stack.deps.temporal.client.workflow.list({ query: `WorkflowType = '${SERVER_CHECK_WORKFLOW}'` }))
    started.push({ workflowId: wf.workflowId, at: wf.startTime.getTime() });
  return runs.flatMap((run) => {
    const wf = started.find((w) => w.at >= run.sentAt && w.at <= run.answeredAt);
    return wf ? [{ ...run, workflowId: wf.workflowId }] : [];
  });
}

if (require.main === module) {
  benchServerTest()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
