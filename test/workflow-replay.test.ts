/**
 * Workflows in flight at an upgrade replay on the new code. test/histories/ holds histories
 * recorded from the code before runs' workflows told their status (commit 9ade96f: every run
 * completed, whatever its outcome), as `History` protobufs (`fetchHistory()`, encoded): plain runs
 * that completed, failed, were cancelled and timed out on an unanswered question; a run still
 * waiting for its answer (a history cut in the middle, as a worker finds it after the upgrade);
 * task occurrences that failed and were retried, were cancelled, timed out, and a tool task's
 * run, each with its child runs. Each must replay without a nondeterminism error: the new end
 * (fail or cancel the workflow) and the RunStatus search attribute are behind `patched()`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { temporal } from '@temporalio/proto';
import { DefaultLogger, Runtime, Worker, type ReplayResult } from '@temporalio/worker';

const DIR = path.join(__dirname, 'histories');

describe('replay of histories recorded before run statuses', () => {
  beforeAll(() => {
    try {
      // The replay worker's state changes are not worth a line each.
      Runtime.install({ logger: new DefaultLogger('WARN') });
    } catch {
      // Another test file of this process installed it first.
    }
  });

  it('replays every recorded agentExecution and taskRun history on the current workflow code', async () => {
    const files = readdirSync(DIR).filter((file) => file.endsWith('.history.bin'));
    expect(files.length).toBeGreaterThanOrEqual(14);
    // Binary rather than the CLI's JSON: this install's @temporalio/common and @temporalio/proto
    // carry two protobufjs versions, and historyFromJSON refuses the other one's types.
    const histories = files.map((file) => ({
      workflowId: file,
      history: temporal.api.history.v1.History.decode(readFileSync(path.join(DIR, file))),
    }));
    const results: ReplayResult[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowBundle: { codePath: process.env.WORKFLOW_BUNDLE_PATH! }, replayName: 'run-status' },
      histories,
    ))
      results.push(result);
    expect(results.map((r) => [r.workflowId, r.error ? String(r.error) : 'ok'])).toEqual(files.map((file) => [file, 'ok']));
  }, 60_000);
});
