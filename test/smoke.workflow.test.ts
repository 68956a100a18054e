import { randomUUID } from 'node:crypto';
import { SearchAttributes } from '../lib/temporal';
import { SYSTEM_CHECK_WORKFLOW, systemCheckStageQuery, type SystemCheckWorkflow } from '../workflows/contracts/system-check';
import { createTestContext, startTestWorker, type TestContext } from './harness';

describe('smoke: a real workflow with a real activity through the worker factory', () => {
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
  });

  afterAll(async () => {
    await worker?.stop();
    await ctx?.close();
  });

  it('runs systemCheck: workflow → activity → PostgreSQL, with typed search attributes', async () => {
    const organizationId = randomUUID();
    const handle = await ctx.temporal.client.workflow.start<SystemCheckWorkflow>(SYSTEM_CHECK_WORKFLOW, {
      taskQueue: worker.taskQueue,
      workflowId: `system-check-${randomUUID()}`,
      typedSearchAttributes: [
        { key: SearchAttributes.OrganizationId, value: organizationId },
        { key: SearchAttributes.ExecutionKind, value: 'system-check' },
      ],
    });
    const result = await handle.result();

    expect(result.database.serverVersion).toMatch(/^\d+\.\d+/);
    expect(result.database.migrationsApplied).toBeGreaterThanOrEqual(1);
    expect(await handle.query(systemCheckStageQuery)).toBe('done');

    const description = await handle.describe();
    expect(description.status.name).toBe('COMPLETED');
    expect(description.typedSearchAttributes.get(SearchAttributes.OrganizationId)).toBe(organizationId);

    const history = await handle.fetchHistory();
    const scheduled = history.events?.filter((e) => e.activityTaskScheduledEventAttributes) ?? [];
    expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)).toEqual(['checkDatabase']);
  });

  it('registers every custom search attribute on the dev server', async () => {
    const { customAttributes } = await ctx.temporal.connection.operatorService.listSearchAttributes({
      namespace: ctx.config.temporal.namespace,
    });
    expect(Object.keys(customAttributes ?? {})).toEqual(
      expect.arrayContaining(['OrganizationId', 'AgentId', 'ServerId', 'TaskId', 'ExecutionKind']),
    );
  });
});
