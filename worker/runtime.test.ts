import { Writable } from 'node:stream';
import { ApplicationFailure } from '@temporalio/common';
import type { AgentHost } from '../host/server';
import { createLogger } from '../lib/logger';
import { httpFor, registerAccount, type Account, type Http } from '../test/api';
import { hostWithAgent, waitFor } from '../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../test/harness';
import { runEnded, temporalLogSink } from './runtime';
import pino from 'pino';

interface Line {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** The project's logger writing JSON lines into memory. */
function capturingLogger() {
  let out = '';
  const sink = new Writable({ write: (chunk, _enc, done) => ((out += chunk.toString()), done()) });
  const logger = createLogger({ log: { level: 'info', pretty: false } }, 'worker-test', sink);
  const lines = (): Line[] =>
    out
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Line);
  return { logger, lines };
}

const INFO = 30;
const WARN = 40;

describe("the Temporal SDK's log lines", () => {
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let http: Http;
  let admin: Account;
  const hosts: AgentHost[] = [];
  // Installed as the process's Temporal runtime logger by the first worker of this file.
  const captured = capturingLogger();

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker({ ...ctx, logger: captured.logger });
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Runtime Log Org');
  });
  afterAll(async () => {
    await Promise.all(hosts.map((host) => host.close()));
    await worker?.stop();
    await ctx?.close();
  });

  it('a run that ends FAILED is one INFO line naming the activity and the failure, with no WARN and no stack', async () => {
    const { agent } = await hostWithAgent(http, admin, hosts);
    const started = await http
      .post(`/api/agents/${agent.id}/execute`)
      .auth(admin.accessToken, { type: 'bearer' })
      .send({ prompt: 'break [fail]' })
      .expect(202);
    const executionId = started.body.executionId as string;
    const workflowId = `execution-${executionId}`;
    // A ceiling for a loaded machine, not an expectation.
    await waitFor(
      async () => (await http.get(`/api/executions/${executionId}`).auth(admin.accessToken, { type: 'bearer' })).body.status === 'FAILED',
      120_000,
      100,
    );
    const answered = await waitFor(
      async () => captured.lines().find((line) => line.workflowId === workflowId && line.failureType === 'ExecutionFailed'),
      60_000,
      100,
    );
    expect(answered).toMatchObject({
      level: INFO,
      activityType: 'executePrompt',
      msg: expect.stringMatching(
        /^activity executePrompt ended with ExecutionFailed: the agent reported an error: script engine: the \[fail\] directive/,
      ),
    });
    const ofThisRun = captured.lines().filter((line) => line.workflowId === workflowId);
    expect(ofThisRun.filter((line) => line.level >= WARN)).toEqual([]);
    expect(JSON.stringify(ofThisRun)).not.toMatch(/"stack"|\n\s+at /);
  });

  it('a real failure keeps its WARN and its stack', () => {
    const { logger, lines } = capturingLogger();
    const sink = temporalLogSink(logger);
    const meta = { workflowId: 'execution-x', activityType: 'executePrompt', attempt: 1, durationMs: 3 };
    sink({
      level: 'WARN',
      message: 'Activity failed',
      meta: { ...meta, error: new TypeError('cannot read properties of undefined') },
      timestampNanos: 0n,
    });
    // A retryable ApplicationFailure (a database error made history-safe, say) is a real failure too.
    sink({
      level: 'WARN',
      message: 'Activity failed',
      meta: { ...meta, error: ApplicationFailure.retryable('database error 40P01', 'DriverException') },
      timestampNanos: 0n,
    });
    const [thrown, retryable] = lines();
    expect(thrown).toMatchObject({
      level: WARN,
      msg: 'Activity failed',
      error: { type: 'TypeError', message: 'cannot read properties of undefined', stack: expect.stringContaining('runtime.test.ts') },
    });
    expect(retryable).toMatchObject({
      level: WARN,
      msg: 'Activity failed',
      error: { message: 'database error 40P01', stack: expect.any(String) },
    });
  });
});

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { lines, logger };
}

describe('the Temporal SDK log of a run whose workflow failed', () => {
  it('is one info line with the run’s reason for agentExecution and taskRun, not a warning with an empty error', () => {
    for (const workflowType of ['agentExecution', 'taskRun']) {
      const { lines, logger } = capture();
      const handled = runEnded(
        { message: 'Workflow failed', meta: { workflowType, workflowId: 'execution-1', error: new Error('the agent reported failure') } },
        logger,
      );
      expect(handled).toBe(true);
      expect(lines).toEqual([
        expect.objectContaining({
          level: 30,
          msg: 'run ended, its workflow failed',
          workflowId: 'execution-1',
          workflowType,
          reason: 'the agent reported failure',
        }),
      ]);
    }
  });

  it('leaves every other entry to the usual routing', () => {
    const { lines, logger } = capture();
    expect(runEnded({ message: 'Workflow failed', meta: { workflowType: 'toolInstall', error: new Error('x') } }, logger)).toBe(false);
    expect(runEnded({ message: 'Activity failed', meta: { workflowType: 'agentExecution' } }, logger)).toBe(false);
    expect(lines).toEqual([]);
  });
});
