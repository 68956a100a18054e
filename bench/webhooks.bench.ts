/**
 * Webhook latency under a burst of failures: 100 runs on the reference host fail at once
 * (`[fail]`), each raising `execution.failed` to an endpoint whose receiver listens on a
 * loopback port. Per event: from the commit that made the run's row FAILED (PostgreSQL's own
 * commit time, `track_commit_timestamp`) to the receiver getting the request; where the time
 * goes, from the rows, Temporal and a LISTEN of our own. Baseline, in the same run: the
 * delivery mechanism without the outbox, 100 `webhookDelivery` workflows (one activity that
 * signs and POSTs the same body) started at once from this process, start → received.
 * Target: p99 event → receiver ≤ 1 s (docs/benchmarks.md says why).
 * `npm run bench -- webhooks [--runs=N]`; `node --import tsx bench/webhooks.bench.ts` runs it alone.
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { optionalTsToMs } from '@temporalio/common/lib/time';
import { Client as PgClient } from 'pg';
import { startAgentHost } from '../host/server';
import { startWebhookDelivery } from '../domain/temporal';
import { insertDeliveries, WEBHOOK_OUTBOX_CHANNEL } from '../domain/webhooks/outbox';
import { Webhook, WebhookDelivery } from '../entities';
import { webhookDeliveryWorkflowId } from '../workflows/contracts/webhook-delivery';
import { percentile } from './round-trip';
import { apiCaller, startBenchStack, validatedAgent, registerBenchAccount } from './stack';

const RUNS = Number(process.argv.find((a) => a.startsWith('--runs='))?.slice(7) ?? 100);
const WARMUP = 5;
const TARGET_P99_MS = 1000;
/** Agents take at most 50 runs at once (agents.schemas.ts): the burst is spread over enough of them. */
const PER_AGENT = 50;

const now = () => performance.timeOrigin + performance.now();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 180_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await pause(50);
  }
}

const fmt = (xs: number[]) =>
  xs.length
    ? `p50 ${percentile(xs, 50).toFixed(0).padStart(5)} ms  p95 ${percentile(xs, 95).toFixed(0).padStart(5)} ms  p99 ${percentile(xs, 99)
        .toFixed(0)
        .padStart(5)} ms  max ${Math.max(...xs)
        .toFixed(0)
        .padStart(5)} ms`
    : 'no samples';

interface Received {
  at: number;
  messageId: string;
  json: { type: string; timestamp: string; data: Record<string, unknown> };
}

/** What the rows, Temporal and the listener tell of one event's way, as epoch milliseconds. */
interface Trace {
  failedCommitted: number;
  eventCommitted: number;
  payloadTimestamp: number;
  deliveryCreated: number;
  noticeReceived: number;
  workflowStarted: number;
  /** From the workflow's history: the worker took its first workflow task, then its activity. */
  workflowTaskStarted: number;
  activityStarted: number;
  startRecorded: number;
  firstAttempt: number;
  received: number;
}

export async function benchWebhooks(): Promise<{ pass: boolean }> {
  const received: Received[] = [];
  const receiver = createServer((req, res) => {
    const at = now();
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ at, messageId: String(req.headers['webhook-id']), json: JSON.parse(body) as Received['json'] });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alerts`;
  const host = await startAgentHost({ token: `bench-${randomUUID()}`, stepDelayMs: 1 });
  // Commit times of rows: the event's real start, after the transaction made the run FAILED.
  const stack = await startBenchStack({}, { postgresSettings: { track_commit_timestamp: 'on' } });
  const listener = new PgClient({ connectionString: stack.env.DATABASE_URL });
  const notices: number[] = [];
  const load = [os.loadavg()];
  try {
    await stack.startWorker();
    await listener.connect();
    listener.on('notification', () => notices.push(now()));
    await listener.query(`listen ${WEBHOOK_OUTBOX_CHANNEL}`);
    const call = apiCaller(stack.api.url);
    const { accessToken: token, organization } = await registerBenchAccount(call, 'bench-webhooks@example.test');
    const organizationId = organization.id;
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const agents: string[] = [];
    for (let i = 0; i < Math.ceil(RUNS / PER_AGENT); i++) {
      agents.push(await validatedAgent(call, token, server.id, { name: `failing-${i}`, maxConcurrency: PER_AGENT }));
    }
    const hook = (await call('POST', '/api/webhooks', { url: receiverUrl, events: ['execution.failed'] }, token)) as { id: string };

    /** `count` runs that fail, all at once; answers their ids once each one's message arrived. */
    const failingBurst = async (count: number): Promise<string[]> => {
      const ids = await Promise.all(
        Array.from({ length: count }, async (_, i) => {
          const { executionId } = (await call(
            'POST',
            `/api/agents/${agents[i % agents.length]}/execute`,
            { prompt: 'bench [fail]' },
            token,
          )) as {
            executionId: string;
          };
          return executionId;
        }),
      );
      const wanted = new Set(ids);
      await until(
        `${count} execution.failed messages`,
        () => received.filter((r) => wanted.has(String(r.json.data.executionId))).length >= count,
      );
      return ids;
    };

    /** When Temporal started a delivery's workflow, and when the worker took its first workflow task, then its activity. */
    const historyOf = async (deliveryId: string) => {
      const handle = stack.deps.temporal.client.workflow.getHandle(webhookDeliveryWorkflowId(deliveryId));
      const workflow = await handle.describe();
      const events = (await handle.fetchHistory()).events ?? [];
      const firstTime = (has: (e: (typeof events)[number]) => unknown) => optionalTsToMs(events.find(has)?.eventTime) ?? Number.NaN;
      return {
        workflowStarted: workflow.startTime.getTime(),
        workflowTaskStarted: firstTime((e) => e.workflowTaskStartedEventAttributes),
        activityStarted: firstTime((e) => e.activityTaskStartedEventAttributes),
      };
    };

    /** The bare mechanism: `count` delivery rows written without a notice, their workflows started at once from here. */
    const webhook = await stack.deps.orm.em.fork().findOneOrFail(Webhook, hook.id);
    const directBurst = async (count: number): Promise<{ latency: number[]; steps: Record<string, number[]> }> => {
      const em = stack.deps.orm.em.fork();
      const rows: WebhookDelivery[] = [];
      for (let i = 0; i < count; i++) {
        const executionId = randomUUID();
        const [row] = await insertDeliveries(
          em,
          {
            id: `execution.failed:${executionId}:1`,
            type: 'execution.failed',
            organizationId,
            at: new Date(),
            data: {
              executionId,
              agentId: agents[0]!,
              taskId: null,
              status: 'FAILED',
              attempt: 1,
              reason: 'the run failed; its log has the details',
              link: `/api/executions/${executionId}`,
            },
          },
          [webhook],
          false,
        );
        rows.push(row!);
      }
      // Marked started first: no sweep of the outbox may start one of them too.
      await em.nativeUpdate(WebhookDelivery, { id: { $in: rows.map((r) => r.id) } }, { workflowStartedAt: new Date() });
      const startedAt = new Map<string, number>();
      await Promise.all(
        rows.map(async (row) => {
          startedAt.set(`msg_${row.id}`, now());
          await startWebhookDelivery(stack.deps.temporal, { deliveryId: row.id, organizationId });
        }),
      );
      await until(`${count} direct deliveries`, () => received.filter((r) => startedAt.has(r.messageId)).length >= count);
      const steps: Record<string, number[]> = {
        'start → workflow started': [],
        'workflow started → first workflow task': [],
        'workflow task → activity started': [],
        'activity started → receiver': [],
      };
      const latency: number[] = [];
      for (const row of rows) {
        const message = received.find((r) => r.messageId === `msg_${row.id}`)!;
        const began = startedAt.get(message.messageId)!;
        latency.push(message.at - began);
        const history = await historyOf(row.id);
        steps['start → workflow started']!.push(history.workflowStarted - began);
        steps['workflow started → first workflow task']!.push(history.workflowTaskStarted - history.workflowStarted);
        steps['workflow task → activity started']!.push(history.activityStarted - history.workflowTaskStarted);
        steps['activity started → receiver']!.push(message.at - history.activityStarted);
      }
      return { latency, steps };
    };

    // Warm-up: the host's engine, the worker's workflow cache, the connections.
    await failingBurst(WARMUP);
    await directBurst(WARMUP);
    await stack.temporalQuiet();

    load.push(os.loadavg());
    const { latency: baseline, steps: baselineSteps } = await directBurst(RUNS);
    await stack.temporalQuiet();
    const burstStarted = now();
    const executions = await failingBurst(RUNS);
    const burstMs = now() - burstStarted;
    load.push(os.loadavg());

    // Every row's first attempt is recorded once its answer was (after the receiver got it).
    const em = stack.deps.orm.em.fork();
    type Row = {
      id: string;
      execution_id: string;
      payload_ts: string;
      created_at: Date;
      workflow_started_at: Date | null;
      last_attempt_at: Date | null;
      attempts: number;
      completed_at: Date;
      failed_committed: Date | null;
      event_committed: Date | null;
    };
    const rowsOf = () =>
      em.getConnection().execute<Row[]>(
        `select d.id, d.payload->'data'->>'executionId' as execution_id, d.payload->>'timestamp' as payload_ts, d.created_at,
                d.workflow_started_at, d.last_attempt_at, d.attempts, e.completed_at,
                pg_xact_commit_timestamp(e.xmin) as failed_committed,
                (select pg_xact_commit_timestamp(ev.xmin) from execution_events ev
                  where ev.execution_id = e.id and ev.payload->>'phase' = 'status' and ev.payload->>'status' = 'FAILED' limit 1) as event_committed
           from webhook_deliveries d join executions e on e.id::text = d.payload->'data'->>'executionId'
          where d.webhook_id = ? and e.id in (${executions.map(() => '?').join(',')})`,
        [hook.id, ...executions],
      );
    const rows = await until('every delivery row recorded', async () => {
      const found = await rowsOf();
      return found.length === RUNS && found.every((r) => r.attempts > 0) && found;
    });
    const traces: Trace[] = [];
    let executionRowRewritten = 0;
    for (const row of rows) {
      const message = received.find((r) => r.messageId === `msg_${row.id}`)!;
      const history = await historyOf(row.id);
      const completedAt = new Date(row.completed_at).getTime();
      let failedCommitted = row.failed_committed ? new Date(row.failed_committed).getTime() : completedAt;
      // The run's row written again after it became FAILED: its commit time is that later write's.
      if (row.event_committed && failedCommitted > new Date(row.event_committed).getTime()) {
        executionRowRewritten++;
        failedCommitted = completedAt;
      }
      const deliveryCreated = new Date(row.created_at).getTime();
      traces.push({
        failedCommitted,
        eventCommitted: row.event_committed ? new Date(row.event_committed).getTime() : Number.NaN,
        payloadTimestamp: Date.parse(row.payload_ts),
        deliveryCreated,
        noticeReceived: notices.find((t) => t >= deliveryCreated) ?? Number.NaN,
        ...history,
        startRecorded: row.workflow_started_at ? new Date(row.workflow_started_at).getTime() : Number.NaN,
        firstAttempt: row.attempts === 1 && row.last_attempt_at ? new Date(row.last_attempt_at).getTime() : Number.NaN,
        received: message.at,
      });
    }
    const span = (from: keyof Trace, to: keyof Trace) => traces.map((t) => t[to] - t[from]).filter((d) => Number.isFinite(d));
    const latency = span('failedCommitted', 'received');
    const p50 = percentile(latency, 50);
    const p99 = percentile(latency, 99);
    const pass = p99 <= TARGET_P99_MS;
    const loads = load.map((l) => l.map((v) => v.toFixed(2)).join('/')).join(' → ');
    process.stdout.write(
      [
        `webhooks: ${RUNS} failing runs at once (all failed and delivered in ${(burstMs / 1000).toFixed(1)} s); load average ${loads}`,
        `  event (FAILED committed) → receiver     ${fmt(latency)}`,
        `  payload timestamp → receiver            ${fmt(span('payloadTimestamp', 'received'))}`,
        `  baseline: ${RUNS} webhookDelivery workflows started at once, start → receiver  ${fmt(baseline)}`,
        ...Object.entries(baselineSteps).map(([step, xs]) => `    ${step.padEnd(45)} ${fmt(xs)}`),
        `  ratio p50 ${(p50 / percentile(baseline, 50)).toFixed(2)}, p99 ${(p99 / percentile(baseline, 99)).toFixed(2)}`,
        `  where the time goes (each step from the one before):`,
        `    FAILED committed → status event committed    ${fmt(span('failedCommitted', 'eventCommitted'))}`,
        `    status event committed → delivery row written ${fmt(span('eventCommitted', 'deliveryCreated'))}`,
        `    delivery row → outbox notice received         ${fmt(span('deliveryCreated', 'noticeReceived'))}`,
        `    notice → workflow started (Temporal)          ${fmt(span('noticeReceived', 'workflowStarted'))}`,
        `    workflow started → first workflow task (worker) ${fmt(span('workflowStarted', 'workflowTaskStarted'))}`,
        `    workflow task → activity started (worker)      ${fmt(span('workflowTaskStarted', 'activityStarted'))}`,
        `    activity started → attempt (row read, signed)  ${fmt(span('activityStarted', 'firstAttempt'))}`,
        `    first attempt → receiver                      ${fmt(span('firstAttempt', 'received'))}`,
        `    (workflow started → workflowStartedAt on the row ${fmt(span('workflowStarted', 'startRecorded'))})`,
        ...(executionRowRewritten ? [`  ${executionRowRewritten} runs' rows were written after FAILED: their completedAt stands in`] : []),
        `  p99 event → receiver ${p99.toFixed(0)} ms (target ≤ ${TARGET_P99_MS} ms) ${pass ? 'PASS' : 'FAIL'}`,
        '',
      ].join('\n'),
    );
    return { pass };
  } finally {
    await listener.end().catch(() => undefined);
    await stack.stop();
    await host.close();
    await new Promise<void>((resolve) => receiver.close(() => resolve()));
  }
}

if (require.main === module) {
  benchWebhooks().then(
    ({ pass }) => process.exit(pass ? 0 : 1),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
}
