/**
 * The contract of `systemCheck` (workflows/system-check.workflow.ts), shared by the workflow,
 * its activity and the smoke test; it imports nothing of the project.
 */
import { defineQuery } from '@temporalio/workflow';

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const SYSTEM_CHECK_WORKFLOW = 'systemCheck';

export interface DatabaseCheck {
  serverVersion: string;
  migrationsApplied: number;
  checkedAt: string;
}

export interface SystemCheckResult {
  database: DatabaseCheck;
}

/** The workflow's signature, for typed starts by type name. */
export type SystemCheckWorkflow = () => Promise<SystemCheckResult>;

export const systemCheckStageQuery = defineQuery<'starting' | 'checking-database' | 'done'>('stage');
