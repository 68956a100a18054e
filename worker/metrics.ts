import { Context } from '@temporalio/activity';
import type { ActivityInboundCallsInterceptor, ActivityInterceptorsFactory } from '@temporalio/worker';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { HOST_TOOLS } from '../lib/host-contract';
import type { ActivityMetrics, WebhookAttemptCount } from '../activities/deps';
import type { McpClientPool, ToolCallOutcome } from '../lib/mcp-pool';
import { METRIC_PREFIX } from '../lib/metrics';
import type { Orm } from '../lib/orm';
import { awaitRecording } from '../domain/runs/row-locks';
import { AGENT_EXECUTION_WORKFLOW, executionIdOfWorkflow } from '../workflows/contracts/agent-execution';
import { TASK_RUN_WORKFLOW } from '../workflows/contracts/task-run';

/** MCP calls: a health check's tools/list in milliseconds, an install in minutes. */
const MCP_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** The host contract's tools keep their name as a label; any other tool (an agent's own) is `other`, so the label stays bounded. */
const TOOL_LABELS: ReadonlySet<string> = new Set(HOST_TOOLS);

/** A run lasts from a second (a tool task) to hours (a prompt that waited for a person). */
const RUN_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600];

/** The workflows that own a run's row; their activities are the run's transitions. */
const RUN_WORKFLOWS = new Set([AGENT_EXECUTION_WORKFLOW, TASK_RUN_WORKFLOW]);

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED'];

/** A run's row as far as its metrics go: `kind` is `task` for a task's run, `agent` for a run started on an agent. */
interface RunRow {
  id: string;
  status: string;
  kind: 'agent' | 'task';
  duration_ms: number | null;
}

/** Ids already counted as started / finished by this process (a transition seen by two overlapping activities counts once). */
const SEEN_LIMIT = 10_000;

/**
 * The worker process's metrics (docs/metrics.md) on the registry its composition root owns.
 * Run counters move when an activity of a run's workflow moves the run's row (read before and
 * after the activity), so every path that starts or ends a run counts, whichever activity it
 * takes. The fleet gauges (queued, waiting for input) are read from the database on scrape:
 * every worker reports the same fleet-wide value, which is right however many there are
 * (aggregate with `max`, not `sum`).
 */
export class WorkerMetrics implements ActivityMetrics {
  readonly runsStarted: Counter<'kind'>;
  readonly runsFinished: Counter<'kind' | 'status'>;
  readonly runDuration: Histogram<'kind' | 'status'>;
  readonly mcpCallDuration: Histogram<'tool' | 'outcome'>;
  readonly webhookDeliveries: Counter<'outcome'>;
  private pool?: McpClientPool;
  private readonly started = new Set<string>();
  private readonly finished = new Set<string>();

  constructor(
    readonly registry: Registry,
    private readonly orm: Orm,
  ) {
    const registers = [registry];
    this.runsStarted = new Counter({
      name: `${METRIC_PREFIX}runs_started_total`,
      help: 'Runs that went RUNNING in an activity of this worker, by kind (agent: started on an agent; task: a task occurrence).',
      labelNames: ['kind'],
      registers,
    });
    this.runsFinished = new Counter({
      name: `${METRIC_PREFIX}runs_finished_total`,
      help: 'Runs that reached a final status in an activity of this worker, by kind and status.',
      labelNames: ['kind', 'status'],
      registers,
    });
    this.runDuration = new Histogram({
      name: `${METRIC_PREFIX}run_duration_seconds`,
      help: "Runs' duration from RUNNING to their final status (the row's durationMs), by kind and status.",
      labelNames: ['kind', 'status'],
      buckets: RUN_BUCKETS,
      registers,
    });
    this.mcpCallDuration = new Histogram({
      name: `${METRIC_PREFIX}mcp_call_duration_seconds`,
      help: "MCP tools/call requests this worker made, by tool (the host contract's, else other) and outcome (ok, tool_error, error).",
      labelNames: ['tool', 'outcome'],
      buckets: MCP_BUCKETS,
      registers,
    });
    this.webhookDeliveries = new Counter({
      name: `${METRIC_PREFIX}webhook_deliveries_total`,
      help: 'Webhook delivery attempts this worker made, by outcome: delivered (2xx), retry (failed, another attempt scheduled), failed (failed for good).',
      labelNames: ['outcome'],
      registers,
    });
    for (const outcome of ['delivered', 'retry', 'failed'] as const) this.webhookDeliveries.inc({ outcome }, 0);
    const poolStates = () => this.pool?.connectionStates() ?? { connecting: 0, busy: 0, idle: 0 };
    new Gauge({
      name: `${METRIC_PREFIX}mcp_connections`,
      help: "This worker's pooled MCP connections, by state (connecting, busy, idle).",
      labelNames: ['state'],
      registers,
      collect() {
        for (const [state, count] of Object.entries(poolStates())) this.set({ state }, count);
      },
    });
    const fleet = (status: string) => async () => {
      const rows = await this.orm.em
        .getConnection()
        .execute<{ count: string }[]>('select count(*)::bigint as count from executions where status = ?', [status]);
      return Number(rows[0]?.count ?? 0);
    };
    const queued = fleet('QUEUED');
    const waiting = fleet('WAITING_INPUT');
    new Gauge({
      name: `${METRIC_PREFIX}runs_queued`,
      help: 'Runs of the whole fleet waiting for a slot (QUEUED), read from the database at scrape.',
      registers,
      async collect() {
        this.set(await queued());
      },
    });
    new Gauge({
      name: `${METRIC_PREFIX}runs_waiting_input`,
      help: "Runs of the whole fleet waiting for a person's answer (WAITING_INPUT), read from the database at scrape.",
      registers,
      async collect() {
        this.set(await waiting());
      },
    });
  }

  /** For McpClientPool's `onToolCall`. */
  readonly observeMcpCall = (tool: string, outcome: ToolCallOutcome, seconds: number): void => {
    this.mcpCallDuration.observe({ tool: TOOL_LABELS.has(tool) ? tool : 'other', outcome }, seconds);
  };

  countWebhookAttempt(outcome: WebhookAttemptCount): void {
    this.webhookDeliveries.inc({ outcome });
  }

  /** The pool whose connections `mcp_fleet_mcp_connections` reports. */
  watchPool(pool: McpClientPool): void {
    this.pool = pool;
  }

  /** The activity interceptor that counts runs' transitions (worker/worker.ts installs it). */
  readonly runTransitions: ActivityInterceptorsFactory = () => ({ inbound: this.inbound });

  private readonly inbound: ActivityInboundCallsInterceptor = {
    execute: async (input, next) => {
      const { workflowExecution, workflowType } = Context.current().info;
      const workflowId = workflowExecution?.workflowId;
      if (!workflowId || !workflowType || !RUN_WORKFLOWS.has(workflowType)) return next(input);
      // A failed read costs a count, never the activity.
      let before = await this.runOf(workflowId).catch(() => undefined);
      const executionId = workflowType === AGENT_EXECUTION_WORKFLOW ? executionIdOfWorkflow(workflowId) : undefined;
      if (!before && executionId) {
        // Its row may still be being recorded by the API, which started the workflow meanwhile
        // (domain/runs/start-execution.ts): the run as recorded is the `before`, or a run that
        // took its slot in the API would count as started here too.
        await awaitRecording(this.orm.em, executionId).catch(() => undefined);
        before = await this.runOf(workflowId).catch(() => undefined);
      }
      try {
        return await next(input);
      } finally {
        const after = await this.runOf(workflowId).catch(() => undefined);
        if (after) this.observe(before, after);
      }
    },
  };

  private observe(before: RunRow | undefined, after: RunRow): void {
    const was = before?.id === after.id ? before.status : undefined;
    if (after.status === 'RUNNING' && was !== 'RUNNING' && remember(this.started, after.id)) this.runsStarted.inc({ kind: after.kind });
    if (FINAL.includes(after.status) && !(was && FINAL.includes(was)) && remember(this.finished, after.id)) {
      const labels = { kind: after.kind, status: after.status };
      this.runsFinished.inc(labels);
      this.runDuration.observe(labels, (after.duration_ms ?? 0) / 1000);
    }
  }

  /** The run a workflow owns: an agentExecution's own row, or the latest attempt of a taskRun's occurrence. */
  private async runOf(workflowId: string): Promise<RunRow | undefined> {
    const rows = await this.orm.em.getConnection().execute<RunRow[]>(
      `select id, status, case when task_id is null then 'agent' else 'task' end as kind, duration_ms
         from executions where workflow_id = ? or task_run_workflow_id = ?
         order by created_at desc limit 1`,
      [workflowId, workflowId],
    );
    return rows[0];
  }
}

function remember(seen: Set<string>, id: string): boolean {
  if (seen.has(id)) return false;
  seen.add(id);
  if (seen.size > SEEN_LIMIT) seen.delete(seen.values().next().value!);
  return true;
}
