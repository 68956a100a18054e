/**
 * Tracing's cost on dispatch (POST /api/agents/:id/execute → the host receives its tools/call),
 * measured in one run against one stack: rounds alternate tracing off (nothing registered) and
 * on (OTLP/HTTP JSON to a real receiver on a loopback port, a worker with the tracing
 * interceptors and sink), so drift of the machine's load falls on both. Target: on ≤ 1.15× off
 * at p50. `npm run bench` runs it; `node --import tsx bench/tracing.bench.ts` runs it alone.
 */
import { randomUUID } from 'node:crypto';
import { startAgentHost } from '../host/server';
import { loadTracingConfig } from '../lib/config';
import { startTracing } from '../lib/tracing';
import { executionHandle } from '../domain/temporal';
import { startOtlpReceiver } from '../test/otlp-receiver';
import { apiCaller, startBenchStack, validatedAgent, registerBenchAccount } from './stack';

const ROUNDS = 4;
const PER_ROUND = 30;
const WARMUP = 5;
const TARGET = 1.15;

const p = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((q / 100) * xs.length))]!;

export async function benchTracing(): Promise<{ pass: boolean }> {
  const receiver = await startOtlpReceiver();
  const host = await startAgentHost({ token: `bench-${randomUUID()}`, stepDelayMs: 1 });
  const stack = await startBenchStack();
  try {
    const call = apiCaller(stack.api.url);
    const { accessToken: token } = await registerBenchAccount(call, 'bench-tracing@example.test');
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const at = () => performance.timeOrigin + performance.now();
    const series = { off: [] as number[], on: [] as number[] };
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of ['off', 'on'] as const) {
        const tracing = startTracing(
          loadTracingConfig(
            mode === 'on' ? { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' } : {},
          ),
          'api',
        );
        const stopWorker = await stack.startWorker({ tracing });
        try {
          const agent = { id: await validatedAgent(call, token, server.id, { maxConcurrency: 50 }) };
          for (let i = 0; i < PER_ROUND; i++) {
            const t0 = at();
            const { executionId } = (await call('POST', `/api/agents/${agent.id}/execute`, { prompt: 'dispatch [steps:1]' }, token)) as {
              executionId: string;
            };
            const received = await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 30_000);
            if (i >= WARMUP) series[mode].push(received.at - t0);
            await executionHandle(stack.deps.temporal, executionId).result();
          }
        } finally {
          await stopWorker();
          await tracing.shutdown();
        }
      }
    }
    const ratio = p(series.on, 50) / p(series.off, 50);
    const pass = ratio <= TARGET && receiver.spans.length > 0;
    process.stdout.write(
      `tracing dispatch: off p50 ${p(series.off, 50).toFixed(1)} ms p95 ${p(series.off, 95).toFixed(1)} ms; ` +
        `on p50 ${p(series.on, 50).toFixed(1)} ms p95 ${p(series.on, 95).toFixed(1)} ms; ratio p50 ${ratio.toFixed(2)} ` +
        `(target ≤ ${TARGET}); ${receiver.spans.length} spans received; n=${series.off.length}/${series.on.length} ${pass ? 'PASS' : 'FAIL'}\n`,
    );
    return { pass };
  } finally {
    await stack.stop();
    await host.close();
    await receiver.close();
  }
}

if (require.main === module) {
  benchTracing().then(
    ({ pass }) => process.exit(pass ? 0 : 1),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
