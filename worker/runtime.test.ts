import pino from 'pino';
import { runEnded } from './runtime';

function capture() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { lines, logger };
}

describe('the Temporal SDK log of a run whose workflow failed', () => {
  it('is one info line with the run’s reason for agentExecution and taskRun, not a warning with an empty error', () => {
    for (const workflowType of ['agentExecution', 'taskRun']) {
      const { lines, logger } = capture();
      const handled = runEnded({ message: 'Workflow failed', meta: { workflowType, workflowId: 'execution-1', error: new Error('the agent reported failure') } }, logger);
      expect(handled).toBe(true);
      expect(lines).toEqual([expect.objectContaining({ level: 30, msg: 'run ended, its workflow failed', workflowId: 'execution-1', workflowType, reason: 'the agent reported failure' })]);
    }
  });

  it('leaves every other entry to the usual routing', () => {
    const { lines, logger } = capture();
    expect(runEnded({ message: 'Workflow failed', meta: { workflowType: 'toolInstall', error: new Error('x') } }, logger)).toBe(false);
    expect(runEnded({ message: 'Activity failed', meta: { workflowType: 'agentExecution' } }, logger)).toBe(false);
    expect(lines).toEqual([]);
  });
});
