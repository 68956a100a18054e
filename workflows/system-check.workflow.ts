import { proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import { systemCheckStageQuery, type SystemCheckResult } from './contracts/system-check';

const { checkDatabase } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, initialInterval: '1s' },
});

/** Smallest real run through the platform: workflow → activity → PostgreSQL. */
export async function systemCheck(): Promise<SystemCheckResult> {
  let stage: 'starting' | 'checking-database' | 'done' = 'starting';
  setHandler(systemCheckStageQuery, () => stage);
  stage = 'checking-database';
  const database = await checkDatabase();
  stage = 'done';
  return { database };
}
