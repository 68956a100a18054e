import { webhookEventOf, type AgentExecutionPayload } from './events';

describe('webhookEventOf: a run that failed', () => {
  const ids = { organizationId: 'org-1', agentId: 'agent-1', executionId: 'run-1' };
  const failed = (extra: Partial<AgentExecutionPayload> = {}) =>
    webhookEventOf({
      type: 'execution:event',
      ...ids,
      seq: 4,
      payload: {
        agentId: ids.agentId,
        executionId: ids.executionId,
        seq: 4,
        attempt: 1,
        phase: 'status',
        status: 'FAILED',
        at: '2026-12-07T00:00:00.000Z',
        ...extra,
      },
    });

  it("names a delegated run's parent, and null for any other run", () => {
    expect(failed({ parentExecutionId: 'parent-1' })?.data).toMatchObject({
      executionId: 'run-1',
      parentExecutionId: 'parent-1',
      taskId: null,
    });
    expect(failed()?.data).toMatchObject({ executionId: 'run-1', parentExecutionId: null });
  });

  it('carries no output or error text', () => {
    const event = failed({ output: 'the secret output', data: { error: 'quoted prompt' } });
    expect(JSON.stringify(event)).not.toMatch(/secret output|quoted prompt/);
  });
});
