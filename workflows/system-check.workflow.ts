import { defineQuery, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';

export interface DatabaseCheck {
  serverVersion: string;
  migrationsApplied: number;
  checkedAt: string;
}

const { checkDatabase } = proxyActivities<Activities>({
  startToCloseTimeout: '30s',
  retry: { maximumAttempts: 3, initialInterval: '1s' },
});

export const systemCheckStageQuery = defineQuery<'starting' | 'checking-database' | 'done'>('stage');

export interface SystemCheckResult {
  database: DatabaseCheck;
}

/** Smallest real run through the platform: workflow → activity → PostgreSQL. */
export async function systemCheck(): Promise<SystemCheckResult> {
  let stage: 'starting' | 'checking-database' | 'done' = 'starting';
  setHandler(systemCheckStageQuery, () => stage);
  stage = 'checking-database';
  const database = await checkDatabase();
  stage = 'done';
  return { database };
}
