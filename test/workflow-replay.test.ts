/**
 * Workflows in flight at an upgrade replay on the new code. test/histories/ holds `History`
 * protobufs (`fetchHistory()`, encoded) recorded from real runs (real PostgreSQL, Temporal dev
 * server, reference MCP hosts and worker, driven through the API):
 * - current/: every workflow type as the current code runs it (`npm run histories:record`,
 *   scripts/record-histories.ts), some cut in the middle of a run, as a worker finds it after an
 *   upgrade;
 * - before-<patch>/: runs of the code before each `patched('<patch>')`, which must still replay
 *   on the old path: before-run-status/ from commit 9ade96f (every run completed, whatever its
 *   outcome), before-run-waiting-signal/ from the commit before 515fa32 (a task-backed run's wait
 *   for an answer not told to its occurrence; scripts/histories/before-run-waiting-signal.ts),
 *   before-cancel-remote-on-cancel/ copied from current/ before that patch (a run cancelled by
 *   Temporal closed without asking its host to cancel the task).
 * A change of a workflow's commands that is not behind `patched()` fails here (shown below with
 * a changed copy of the workflows, test/replay/changed-workflows.ts).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type ReplayResult } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { AGENT_EXECUTION_WORKFLOW } from '../workflows/contracts/agent-execution';
import { AGENT_PROVISION_WORKFLOW } from '../workflows/contracts/agent-provision';
import { AGENT_RETIRE_WORKFLOW } from '../workflows/contracts/agent-retire';
import { SERVER_CHECK_WORKFLOW, SERVER_HEALTH_WORKFLOW } from '../workflows/contracts/server-check';
import { SYSTEM_CHECK_WORKFLOW } from '../workflows/contracts/system-check';
import { TASK_RUN_WORKFLOW } from '../workflows/contracts/task-run';
import { TOOL_INSTALL_WORKFLOW } from '../workflows/contracts/tool-install';
import { WEBHOOK_DELIVERY_WORKFLOW } from '../workflows/contracts/webhook-delivery';
import { RUN_RECONCILE_WORKFLOW } from '../workflows/contracts/run-reconcile';
import { bundleWorkflows } from '../worker/worker';

const DIR = path.join(__dirname, 'histories');
/** Every workflow type the worker runs (workflows/index.ts checks each against its contract). */
const WORKFLOW_TYPES = [
  AGENT_EXECUTION_WORKFLOW,
  AGENT_PROVISION_WORKFLOW,
  AGENT_RETIRE_WORKFLOW,
  SERVER_CHECK_WORKFLOW,
  SERVER_HEALTH_WORKFLOW,
  SYSTEM_CHECK_WORKFLOW,
  TASK_RUN_WORKFLOW,
  TOOL_INSTALL_WORKFLOW,
  WEBHOOK_DELIVERY_WORKFLOW,
  RUN_RECONCILE_WORKFLOW,
];
const WORKFLOWS_DIR = path.join(__dirname, '..', 'workflows');

type Histories = Array<{ workflowId: string; history: temporal.api.history.v1.History }>;

/** Every history, named `<set>/<what it is>` after its directory and file. */
function histories(filter: (name: string) => boolean = () => true): Histories {
  return (
    readdirSync(DIR, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .flatMap((set) =>
        readdirSync(path.join(DIR, set.name))
          .filter((file) => file.endsWith('.history.bin'))
          .map((file) => `${set.name}/${file.replace(/\.history\.bin$/, '')}`),
      )
      .filter(filter)
      .sort()
      // Binary rather than the CLI's JSON: this install's @temporalio/common and @temporalio/proto
      // carry two protobufjs versions, and historyFromJSON refuses the other one's types.
      .map((name) => ({
        workflowId: name,
        history: temporal.api.history.v1.History.decode(readFileSync(path.join(DIR, `${name}.history.bin`))),
      }))
  );
}

function workflowType(history: temporal.api.history.v1.History): string {
  return history.events[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
}

async function replay(
  bundle: Parameters<typeof Worker.runReplayHistories>[0]['workflowBundle'],
  set: Histories,
): Promise<Map<string, ReplayResult>> {
  const results = new Map<string, ReplayResult>();
  for await (const result of Worker.runReplayHistories({ workflowBundle: bundle, replayName: 'workflow-replay' }, set))
    results.set(result.workflowId, result);
  return results;
}

const ALL = histories();
const NAMES = ALL.map((h) => h.workflowId);

beforeAll(() => {
  try {
    // The replay worker's state changes are not worth a line each.
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Another test file of this process installed it first.
  }
});

describe('replay of the recorded histories on the current workflow code', () => {
  let results: Map<string, ReplayResult>;
  beforeAll(async () => {
    results = await replay({ codePath: process.env.WORKFLOW_BUNDLE_PATH! }, ALL);
  }, 120_000);

  it.each(NAMES)('%s replays without a nondeterminism error', (name) => {
    const error = results.get(name)?.error;
    expect(error ? String(error) : results.has(name) ? 'ok' : 'not replayed').toBe('ok');
  });

  it('has histories of every workflow type of the current code', () => {
    const recorded = new Set(ALL.filter((h) => h.workflowId.startsWith('current/')).map((h) => workflowType(h.history)));
    expect(WORKFLOW_TYPES.filter((type) => !recorded.has(type))).toEqual([]);
  });

  it('has histories of the code before each patch the workflows make', () => {
    const patches = readdirSync(WORKFLOWS_DIR)
      .filter((file) => file.endsWith('.ts'))
      .flatMap((file) => [...readFileSync(path.join(WORKFLOWS_DIR, file), 'utf8').matchAll(/patched\('([^']+)'\)/g)].map((m) => m[1]!));
    expect(patches.length).toBeGreaterThanOrEqual(2);
    const missing = [...new Set(patches)].filter((patch) => !NAMES.some((name) => name.startsWith(`before-${patch}/`)));
    expect(missing).toEqual([]);
  });
});

describe('replay of the recorded histories on changed workflow code', () => {
  let results: Map<string, ReplayResult>;
  beforeAll(async () => {
    const bundle = await bundleWorkflowCode({
      workflowsPath: require.resolve('./replay/changed-workflows'),
      workflowInterceptorModules: [require.resolve('../workflows/interceptors')],
      logger: new DefaultLogger('WARN'),
    });
    results = await replay(
      { code: bundle.code },
      ALL.filter((h) => ['systemCheck', 'agentProvision'].includes(workflowType(h.history))),
    );
  }, 120_000);

  it('fails a history whose workflow schedules a new command not behind patched(): a DeterminismViolationError', () => {
    const changed = [...results.values()].filter((r) => r.workflowId.includes('system-check'));
    expect(changed.length).toBeGreaterThan(0);
    for (const result of changed) expect(result.error).toBeInstanceOf(DeterminismViolationError);
  });

  it('replays the same change behind patched(): runs recorded before take the old path', () => {
    const changed = [...results.values()].filter((r) => r.workflowId.includes('agent-provision'));
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.map((r) => [r.workflowId, r.error ? String(r.error) : 'ok'])).toEqual(changed.map((r) => [r.workflowId, 'ok']));
  });
});

describe('replay of the recorded histories on the bundle a worker with tracing off loads', () => {
  let code: string;
  let results: Map<string, ReplayResult>;
  beforeAll(async () => {
    ({ code } = await bundleWorkflows({ traced: false }));
    expect(code).not.toContain('OpenTelemetryInboundInterceptor');
    results = await replay({ code }, ALL);
  }, 180_000);

  it('leaves the OpenTelemetry workflow interceptors (and the SDK they bring) out of the bundle', () => {
    // Module paths, as webpack names the modules it bundles (a comment may name the package).
    const modules = ['node_modules/@temporalio/interceptors-opentelemetry/', 'node_modules/@opentelemetry/sdk-trace-base/'];
    expect(modules.filter((m) => code.includes(m))).toEqual([]);
  });

  // Histories recorded with the interceptors replay without them (and the other way round, above):
  // turning tracing on or off at a worker's restart is safe for the runs in flight.
  it.each(NAMES)('%s replays without a nondeterminism error', (name) => {
    const error = results.get(name)?.error;
    expect(error ? String(error) : results.has(name) ? 'ok' : 'not replayed').toBe('ok');
  });
});
