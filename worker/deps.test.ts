import { createTestContext, type TestContext } from '../test/harness';
import { createWorkerDeps, type WorkerDeps } from './deps';
import { createWorker } from './worker';

describe('the worker composition root', () => {
  let ctx: TestContext;

  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(async () => {
    await ctx?.close();
  });

  it('builds every dependency createWorker needs, and createWorker refuses a missing one instead of making its own', async () => {
    const { deps, close } = await createWorkerDeps(ctx.config, {
      orm: ctx.orm,
      logger: ctx.logger,
      temporalClient: ctx.temporal.client,
      webhookOutbox: false,
    });
    try {
      for (const part of ['mcp', 'running'] as const) {
        await expect(createWorker({ ...deps, [part]: undefined } as unknown as WorkerDeps)).rejects.toThrow(
          `createWorker: ${part} is missing`,
        );
      }
    } finally {
      await close();
    }
    // What the caller lent is still the caller's: closing the worker's parts left the ORM open.
    expect(await ctx.orm.em.getConnection().execute('select 1 as one')).toEqual([{ one: 1 }]);
  });
});
