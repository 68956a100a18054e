/**
 * Why a connection test's first workflow task waits on a quiet machine and not on a loaded one
 * (docs/benchmarks.md, "Server test: the first workflow task's wait"). Two dev servers side by
 * side, one with mcp-fleet's dynamic config (lib/temporal.ts DEV_SERVER_DYNAMIC_CONFIG) and one
 * with Temporal's default transfer-queue read rate, each with a worker in this process running
 * a workflow that does nothing; at each pace the two are driven in turn, each start awaited to
 * its result (as the API's `POST /test` does) but started on its due time, and the wait from
 * `WorkflowExecutionStarted` to `WorkflowTaskStarted` is read from each history.
 *
 * `node --import tsx bench/server-test-pace.ts [--rates=8,12,16,20] [--runs=100]`
 */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { freePort } from '../dev/free-port';
import { startTemporalDevServer, type TemporalDevServer } from '../dev/temporal-dev-server';
import { DEV_SERVER_DYNAMIC_CONFIG } from '../lib/temporal';
import { eventMs, firstEvent } from './history-breakdown';
import { percentile } from './round-trip';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
const RATES = (arg('rates') ?? '8,12,16,20').split(',').map(Number);
// Enough that the reader's burst (its token bucket holds a second or two of reads) is spent early in each pace.
const RUNS = Number(arg('runs') ?? 100);
const TASK_QUEUE = 'pace';
/** Temporal's own default for the setting mcp-fleet raises (service/history dynamic config). */
const TEMPORAL_DEFAULT_TRANSFER_READS_PER_S = 20;

interface Side {
  label: string;
  server: TemporalDevServer;
  client: Client;
  stop(): Promise<void>;
}

async function side(label: string, transferReadsPerS?: number): Promise<Side> {
  const server = await startTemporalDevServer({
    port: await freePort(),
    namespace: 'default',
    // Flags later on the command line win: this puts the dev server back on Temporal's default.
    extraArgs:
      transferReadsPerS === undefined ? [] : ['--dynamic-config-value', `history.transferProcessorMaxPollRPS=${transferReadsPerS}`],
  });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const worker = await Worker.create({
    connection: nativeConnection,
    taskQueue: TASK_QUEUE,
    workflowsPath: require.resolve('./server-test-pace.workflow'),
  });
  const running = worker.run();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection });
  return {
    label,
    server,
    client,
    async stop() {
      worker.shutdown();
      await running;
      await Promise.all([nativeConnection.close(), connection.close()]);
      await server.stop();
    },
  };
}

/** Runs `RUNS` workflows started every 1000/rate ms (or right after the previous one, if later); each one's wait. */
async function paced(s: Side, rate: number, tag: string): Promise<{ waits: number[]; achieved: number }> {
  const ids: string[] = [];
  const began = Date.now();
  for (let i = 0; i < RUNS; i++) {
    const due = began + (i * 1000) / rate;
    if (Date.now() < due) await new Promise((r) => setTimeout(r, due - Date.now()));
    const workflowId = `${tag}-${rate}-${i}`;
    await s.client.workflow.execute('paceProbe', { taskQueue: TASK_QUEUE, workflowId });
    ids.push(workflowId);
  }
  const achieved = (RUNS * 1000) / (Date.now() - began);
  const waits: number[] = [];
  for (const id of ids) {
    const events = (await s.client.workflow.getHandle(id).fetchHistory()).events ?? [];
    waits.push(eventMs(firstEvent(events, 'WorkflowTaskStarted'))! - eventMs(firstEvent(events, 'WorkflowExecutionStarted'))!);
  }
  return { waits, achieved };
}

async function main(): Promise<void> {
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const sides = [
    await side(`mcp-fleet dev config (${JSON.stringify(DEV_SERVER_DYNAMIC_CONFIG)})`),
    await side(
      `Temporal default (transferProcessorMaxPollRPS ${TEMPORAL_DEFAULT_TRANSFER_READS_PER_S})`,
      TEMPORAL_DEFAULT_TRANSFER_READS_PER_S,
    ),
  ];
  try {
    for (const s of sides)
      for (let i = 0; i < 10; i++) await s.client.workflow.execute('paceProbe', { taskQueue: TASK_QUEUE, workflowId: `warm-${i}` });
    process.stdout.write(`workflow started → workflow task started, ${RUNS} runs per pace, each side in turn:\n`);
    for (const rate of RATES)
      for (const s of sides) {
        const { waits, achieved } = await paced(s, rate, s === sides[0] ? 'a' : 'b');
        process.stdout.write(
          `  ${String(rate).padStart(3)}/s (${achieved.toFixed(1).padStart(4)}/s achieved)  ${s.label.padEnd(70)} p50 ${String(percentile(waits, 50)).padStart(3)} ms   p90 ${String(percentile(waits, 90)).padStart(3)} ms\n`,
        );
      }
  } finally {
    for (const s of sides) await s.stop();
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  },
);
