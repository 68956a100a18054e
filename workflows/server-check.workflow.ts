import { proxyActivities, proxyLocalActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';

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

const { checkServer, listServerIds, checkInstalledTools } = proxyActivities<Activities>({
  // Connect + ping + tools/list each have their own MCP timeout inside the activity.
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['ServerNotFound'] },
});

export interface ServerCheckInput {
  serverId: string;
  reason: ServerCheckReason;
}

/**
 * A person is waiting on the on-demand check, so it runs as a local activity: inside the
 * workflow task, sparing the extra task-queue hop a regular activity costs (about half the
 * round trip on a dev server). Retries and timeouts still apply.
 */
const { checkServer: checkServerNow } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '2m',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['ServerNotFound'] },
});

/** On-demand connection test or health check of one server (POST /api/servers/:id/test|health). */
export async function serverCheck(input: ServerCheckInput): Promise<ServerCheckResult> {
  const result = await checkServerNow(input.serverId, input.reason);
  setCurrentDetails(`**${result.status}**${result.latencyMs !== null ? ` in ${result.latencyMs} ms` : ''}${result.error ? `: ${result.error}` : ''}`);
  return result;
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

/**
 * The `server-health` schedule's run: every server of every organisation, `concurrency` at a
 * time; on each server that answers with check_tool, its installed catalog tools are checked
 * for drift in the same lane.
 */
export async function serverHealth(input: ServerHealthInput): Promise<ServerHealthSummary> {
  const ids = input.serverIds ?? (await listServerIds());
  const summary: ServerHealthSummary = { checked: 0, online: 0, degraded: 0, offline: 0, missing: 0, tools: { checked: 0, changed: 0, vanished: 0, unchecked: 0 } };
  let next = 0;
  const lane = async () => {
    while (next < ids.length) {
      const id = ids[next++]!;
      try {
        const result = await checkServer(id, 'schedule');
        summary.checked++;
        if (result.status === 'ONLINE') summary.online++;
        else if (result.status === 'DEGRADED') summary.degraded++;
        else summary.offline++;
        if (result.ok && !result.missingHostTools.includes('check_tool')) {
          const drift = await checkInstalledTools(id);
          for (const key of ['checked', 'changed', 'vanished', 'unchecked'] as const) summary.tools[key] += drift[key];
        }
      } catch {
        // Deleted between listing and checking.
        summary.missing++;
      }
      setCurrentDetails(
        `${summary.checked}/${ids.length} servers checked: ${summary.online} online, ${summary.degraded} degraded, ${summary.offline} offline` +
          (summary.tools.checked ? `; ${summary.tools.checked} installed tools checked, ${summary.tools.changed} changed version, ${summary.tools.vanished} vanished` : ''),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(input.concurrency, ids.length)) }, lane));
  return summary;
}
