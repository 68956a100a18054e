/**
 * Install round trip: `POST /api/tools/server/:id/install` with Accept: text/event-stream, until
 * the stream reports INSTALLED (API → toolInstall workflow → activity → check_tool,
 * install_tool and check_tool on the host → row + event → SSE), against a raw MCP client
 * making the same three calls on the same host over one open connection (as the worker's pool
 * does). Each install writes a file of its own that its version command reads, so the check
 * first finds the tool absent and the install runs: what is measured is the platform, not the
 * package manager. p50 over 50 installs each, interleaved. Target: the API's p50 at most 45 ms
 * above the raw p50. Then where the API's time went, step by step, from the bench's clock and
 * the workflows' histories.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Organization, ToolDefinition } from '../entities';
import { startAgentHost } from '../host/server';
import { hostToolCall } from '../lib/host-contract';
import { eventMs, firstEvent, printBreakdown, type TimedRun } from './history-breakdown';
import { compareRoundTrips, percentile } from './round-trip';
import { startBenchStack } from './stack';

const INSTALLS = Number(process.argv.find((a) => a.startsWith('--installs='))?.slice(11) ?? 50);
const WARMUP = 5;
const TARGET_ADDED_MS = 45;

/** A tool that is "installed" once its file exists; each install gets a file of its own. */
function noopTool(file: string) {
  return {
    installCommand: `echo "noop 1.0.0" > ${file}`,
    uninstallCommand: `rm -f ${file}`,
    versionCommand: `cat ${file}`,
    versionRegex: String.raw`noop (\S+)`,
  };
}

export async function benchToolInstall(): Promise<{ pass: boolean }> {
  const host = await startAgentHost({ token: `bench-${randomUUID()}`, allowCommands: true });
  // No metrics endpoints: another bench or a dev API on this machine may hold their ports.
  const stack = await startBenchStack({ METRICS_PORT: '0', WORKER_METRICS_PORT: '0', WORKER_TEMPORAL_METRICS_PORT: '0' });
  const raw = new Client({ name: 'bench', version: '0' });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-bench-install-'));
  try {
    await stack.startWorker();
    const base = stack.api.url;
    const post = (path: string, body: unknown, token?: string, accept = 'application/json') =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept, ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    const reg = (await (
      await post('/api/auth/register', {
        email: 'bench-tools@example.test',
        password: 'bench password 123',
        name: 'Bench',
        organizationName: 'Bench',
      })
    ).json()) as {
      accessToken: string;
      organization: { id: string };
    };
    const server = (await (
      await post('/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, reg.accessToken)
    ).json()) as { id: string };

    // One catalog entry per install: each workflow id (tool-<server>-<tool>) is then free at once.
    const em = stack.deps.orm.em.fork();
    const tools = Array.from({ length: INSTALLS + WARMUP }, (_, i) =>
      em.create(ToolDefinition, {
        organization: em.getReference(Organization, reg.organization.id),
        name: `noop-${i}`,
        displayName: `No-op ${i}`,
        category: 'cli',
        builtin: false,
        ...noopTool(path.join(dir, `api-${i}`)),
      }),
    );
    await em.flush();

    let next = 0;
    const timed: TimedRun[] = [];
    const viaApi = async () => {
      const tool = tools[next++]!;
      const sentAt = Date.now();
      const res = await post(`/api/tools/server/${server.id}/install`, { toolId: tool.id }, reg.accessToken, 'text/event-stream');
      const text = await res.text();
      timed.push({ sentAt, answeredAt: Date.now(), workflowId: /"workflowId":"([^"]+)"/.exec(text)?.[1] ?? '' });
      const statuses = [...text.matchAll(/"status":"([A-Z_]+)"/g)].map((m) => m[1]);
      if (statuses.at(-1) !== 'INSTALLED' || text.includes('"alreadyInstalled":true'))
        throw new Error(`install ended ${res.status} ${text}`);
    };
    await raw.connect(
      new StreamableHTTPClientTransport(new URL(host.url), { requestInit: { headers: { Authorization: `Bearer ${host.token}` } } }),
    );
    let nextRaw = 0;
    const direct = async () => {
      const noop = noopTool(path.join(dir, `raw-${nextRaw++}`));
      const check = hostToolCall('check_tool', { name: 'noop', versionCommand: noop.versionCommand, versionRegex: noop.versionRegex });
      const before = await raw.callTool(check);
      const installed = await raw.callTool(hostToolCall('install_tool', { name: 'noop', installCommand: noop.installCommand }));
      const checked = await raw.callTool(check);
      if (
        (before.structuredContent as { installed?: boolean }).installed !== false ||
        installed.isError ||
        (checked.structuredContent as { version?: string }).version !== '1.0.0'
      ) {
        throw new Error('raw install failed');
      }
    };

    // The raw client's last check_tool: received on the host → its answer back (no database).
    const rawLastCheck: number[] = [];
    const timedDirect = async () => {
      const file = path.join(dir, `raw-${nextRaw}`);
      await direct();
      const received = host.calls.findLast((c) => c.tool === 'check_tool' && String(c.args.versionCommand).includes(file));
      if (received) rawLastCheck.push(Date.now() - received.at);
    };

    const verdict = await compareRoundTrips({
      name: 'tool-install bench',
      count: INSTALLS,
      warmup: WARMUP,
      platform: { label: 'POST /api/tools/server/:id/install → INSTALLED', run: viaApi },
      baseline: { label: 'raw MCP check_tool + install_tool + check_tool', run: timedDirect },
      adds: 'the install workflow adds',
      targetAddedMs: TARGET_ADDED_MS,
    });
    // The host's calls of an install, found by its tool's file (in its commands), on the bench's clock (one process).
    const fileOf = new Map(tools.map((tool, i) => [tool.id, path.join(dir, `api-${i}`)]));
    const hostCalls = (events: Parameters<Parameters<typeof printBreakdown>[3]>[0]) => {
      const input = firstEvent(events, 'WorkflowExecutionStarted')?.workflowExecutionStartedEventAttributes?.input?.payloads?.[1]?.data;
      const file = input ? fileOf.get(JSON.parse(Buffer.from(input).toString('utf8')) as string) : undefined;
      const mine = file ? host.calls.filter((c) => Object.values(c.args).some((v) => String(v).includes(file))) : [];
      return { checks: mine.filter((c) => c.tool === 'check_tool'), install: mine.find((c) => c.tool === 'install_tool') };
    };
    // The answer ends with INSTALLED, which the activity announces before the workflow closes.
    await printBreakdown(stack.deps.temporal.client, 'where the install spends its time', timed.slice(-INSTALLS), (events) => {
      const { checks, install } = hostCalls(events);
      return [
        ['workflow started', eventMs(firstEvent(events, 'WorkflowExecutionStarted'))],
        ['task started on worker', eventMs(firstEvent(events, 'WorkflowTaskStarted'))],
        ['activity started', eventMs(firstEvent(events, 'ActivityTaskStarted'))],
        ['host received check_tool', checks[0]?.at],
        ['host received install_tool', install?.at],
        ['host received the last check_tool (then the row, audit and INSTALLED event)', checks[1]?.at],
      ];
    });
    process.stdout.write(
      `raw: the host received the last check_tool → answer   p50 ${percentile(rawLastCheck.slice(-INSTALLS), 50).toFixed(0).padStart(4)} ms\n`,
    );
    return verdict;
  } finally {
    await raw.close().catch(() => undefined);
    await stack.stop();
    await host.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (require.main === module) {
  benchToolInstall()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
