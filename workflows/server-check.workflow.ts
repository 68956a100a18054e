import { proxyActivities, proxyLocalActivities, setCurrentDetails } from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { ServerCheckInput, ServerCheckResult, ServerHealthInput, ServerHealthSummary } from './contracts/server-check';

const { checkServer, listServerIds, checkInstalledTools } = proxyActivities<Activities>({
  // Connect + ping + tools/list each have their own MCP timeout inside the activity. Its reads
  // and writes wait for an unavailable PostgreSQL for up to half this (DatabaseWait): the
  // default DATABASE_OUTAGE_GRACE_MS of 2 minutes. Timeouts are not part of the history.
  startToCloseTimeout: '4m',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['ServerNotFound'] },
});

/**
 * A person is waiting on the on-demand check, so it runs as a local activity: inside the
 * workflow task, sparing the extra task-queue hop a regular activity costs (about half the
 * round trip on a dev server). Retries and timeouts still apply.
 */
const { checkServer: checkServerNow } = proxyLocalActivities<Activities>({
  startToCloseTimeout: '4m',
  retry: { maximumAttempts: 3, initialInterval: '1s', nonRetryableErrorTypes: ['ServerNotFound'] },
});

/** On-demand connection test or health check of one server (POST /api/servers/:id/test|health). */
export async function serverCheck(input: ServerCheckInput): Promise<ServerCheckResult> {
  const result = await checkServerNow(input.serverId, input.reason);
  setCurrentDetails(
    `**${result.status}**${result.latencyMs !== null ? ` in ${result.latencyMs} ms` : ''}${result.error ? `: ${result.error}` : ''}`,
  );
  return result;
}

/**
 * The `server-health` schedule's run: every server of every organisation, `concurrency` at a
 * time; on each server that answers with check_tool, its installed catalog tools are checked
 * for drift in the same lane.
 */
export async function serverHealth(input: ServerHealthInput): Promise<ServerHealthSummary> {
  const ids = input.serverIds ?? (await listServerIds());
  const summary: ServerHealthSummary = {
    checked: 0,
    online: 0,
    degraded: 0,
    offline: 0,
    missing: 0,
    tools: { checked: 0, changed: 0, vanished: 0, unchecked: 0 },
  };
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
          (summary.tools.checked
            ? `; ${summary.tools.checked} installed tools checked, ${summary.tools.changed} changed version, ${summary.tools.vanished} vanished`
            : ''),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(input.concurrency, ids.length)) }, lane));
  return summary;
}
