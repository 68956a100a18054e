/**
 * The contract of `serverCheck` and `serverHealth` (workflows/server-check.workflow.ts), shared
 * by the workflows, their activities, the API, the worker's schedule and the tests; it imports
 * nothing of the project.
 */

/** The workflows' type names: the names workflows/index.ts exports them under (checked there). */
export const SERVER_CHECK_WORKFLOW = 'serverCheck';
export const SERVER_HEALTH_WORKFLOW = 'serverHealth';

export type ServerCheckReason = 'test' | 'health' | 'schedule';

/** What a connection test answers; holds no secret, so it may sit in workflow history. */
export interface ServerCheckResult {
  serverId: string;
  ok: boolean;
  status: 'ONLINE' | 'DEGRADED' | 'OFFLINE';
  latencyMs: number | null;
  serverInfo: { name: string; version: string } | null;
  protocolVersion: string | null;
  transport: 'streamable-http' | 'sse' | null;
  tools: string[];
  missingHostTools: string[];
  error?: string;
  toolsChanged?: { added: string[]; removed: string[]; changed: string[] };
  checkedAt: string;
}

/** On-demand checks are many per server: each run has its own id, still named after its server. */
export function serverCheckWorkflowId(reason: 'test' | 'health', serverId: string, unique: string): string {
  return `server-${reason}-${serverId}-${unique}`;
}

export interface ServerCheckInput {
  serverId: string;
  reason: ServerCheckReason;
}

export interface ServerHealthInput {
  concurrency: number;
  /** Only these servers (an on-demand run over a few); default every server of every organisation. */
  serverIds?: string[];
}

export interface ServerHealthSummary {
  checked: number;
  online: number;
  degraded: number;
  offline: number;
  missing: number;
  /** Installed catalog tools whose version was asked again (drift), and what changed. */
  tools: { checked: number; changed: number; vanished: number; unchecked: number };
}

/** The workflows' signatures, for typed starts by type name. */
export type ServerCheckWorkflow = (input: ServerCheckInput) => Promise<ServerCheckResult>;
export type ServerHealthWorkflow = (input: ServerHealthInput) => Promise<ServerHealthSummary>;
