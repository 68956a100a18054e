/**
 * Records test/histories/before-run-waiting-signal/: task-backed runs that wait for a person's
 * answer, on the code before `patched('run-waiting-signal')` (the parent of commit 515fa32), where
 * the run did not tell its occurrence it was waiting. Run by scripts/histories/record-before.sh on
 * a checkout of that commit: it imports only what that code had (no workflows/contracts/, so the
 * workflow ids are written out as that code made them: `task-run-<taskId>-<executionId>`,
 * `execution-<executionId>`).
 */
import { httpFor, registerAccount } from '../../test/api';
import { activeAgent, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, startTestWorker } from '../../test/harness';
import { taskApi } from '../../test/tasks';
import { after, EventType, recorder, withStack } from './recorder';

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: before-run-waiting-signal.ts <output dir>');
  await withStack(async () => {
    const ctx = await createTestContext();
    const worker = await startTestWorker(ctx);
    const http = httpFor(ctx);
    const admin = await registerAccount(http, 'History Recording Org');
    const { host, serverId } = await registerHost(http, admin);
    try {
      const agent = await activeAgent(http, admin, serverId, { maxConcurrency: 5 });
      const tasks = taskApi(http, admin);
      const rec = recorder(ctx.temporal.client, () => true, { dir, fresh: true });
      const answer = (id: string) =>
        http
          .post(`/api/executions/${id}/input`)
          .set(tasks.auth)
          .send({ action: 'accept', content: { answer: 'yes' } })
          .expect(200);
      const waiting = (id: string) => waitFor(async () => (await tasks.execution(id))?.status === 'WAITING_INPUT', 120_000, 100);
      const ended = (id: string) =>
        waitFor(
          async () => ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes((await tasks.execution(id))?.status ?? ''),
          120_000,
          100,
        );

      // Answered: in flight (as an upgraded worker finds it) and to its end.
      const asking = await tasks.create({ agentId: agent.id, prompt: '[ask:Go on?] done', timeoutMs: 60_000 });
      const id = await tasks.run(asking.id);
      await waiting(id);
      await rec.inFlight(`execution-${id}`, 'task-run-input-waiting-child', (events) =>
        after(events, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, EventType.EVENT_TYPE_TIMER_STARTED),
      );
      await rec.inFlight(`task-run-${asking.id}-${id}`, 'task-run-input-waiting', (events) =>
        after(events, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
      );
      await answer(id);
      await ended(id);
      await rec.closed(`task-run-${asking.id}-${id}`, 'task-run-input-answered');
      await rec.closed(`execution-${id}`, 'task-run-input-answered-child');

      // Cancelled while it waits.
      const unanswered = await tasks.create({ agentId: agent.id, prompt: '[ask:Anyone there?] done', timeoutMs: 60_000 });
      const lateId = await tasks.run(unanswered.id);
      await waiting(lateId);
      await http.post(`/api/executions/${lateId}/cancel`).set(tasks.auth).expect(202);
      await ended(lateId);
      await rec.closed(`task-run-${unanswered.id}-${lateId}`, 'task-run-input-cancelled');
      await rec.closed(`execution-${lateId}`, 'task-run-input-cancelled-child');
      process.stdout.write(`${rec.written.length} histories written to ${dir}\n`);
    } finally {
      await worker.stop();
      await host.close();
      await ctx.close();
    }
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
