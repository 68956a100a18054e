/**
 * The last step of a tool install, alone: the outcome written to the tool's row (with its
 * audit row and `server:tool` NOTIFY) until the API's event hub hears the event, which is what
 * the install's SSE answer waits for after the host's last check_tool. setServerToolState (one
 * statement) against the same change made the way it was before issue 21's work on it: a
 * transaction that locks the row, checks the guard, updates, inserts the audit row and
 * notifies (BEGIN, SELECT … FOR UPDATE, UPDATE, INSERT, pg_notify, COMMIT), here written as
 * those statements. Interleaved, after a warm-up of each, on the bench stack's PostgreSQL.
 * Passes when the one statement is not slower at p50.
 */
import { McpServer, Organization, ServerToolStatus, ToolDefinition } from '../entities';
import { EVENTS_CHANNEL } from '../domain/events';
import { BUSY_STATUSES, serverToolEvent, setServerToolState, type ServerToolRef } from '../domain/tools/install-state';
import { compareRoundTrips } from './round-trip';
import { startBenchStack } from './stack';

const WRITES = Number(process.argv.find((a) => a.startsWith('--writes='))?.slice(9) ?? 200);
const WARMUP = 20;

export async function benchToolInstallWrite(): Promise<{ pass: boolean }> {
  const stack = await startBenchStack({ METRICS_PORT: '0', WORKER_METRICS_PORT: '0', WORKER_TEMPORAL_METRICS_PORT: '0' });
  try {
    const { orm, events } = stack.deps;
    const em = orm.em.fork();
    const organization = em.create(Organization, { name: 'Bench', slug: `bench-${Date.now()}` });
    const server = em.create(McpServer, {
      organization,
      name: 'bench-host',
      url: 'http://127.0.0.1:1/mcp',
      masterTokenCiphertext: 'v1.iv.tag.ciphertext',
      masterTokenKeyId: 'bench',
    });
    // One catalog entry per write, each INSTALLING under its own workflow, as an install leaves it.
    const tools = Array.from({ length: 2 * (WRITES + WARMUP) }, (_, i) =>
      em.create(ToolDefinition, {
        organization,
        name: `noop-${i}`,
        displayName: `No-op ${i}`,
        category: 'cli',
        builtin: false,
        installCommand: 'true',
        uninstallCommand: 'true',
        versionCommand: 'true',
      }),
    );
    await em.flush();
    const refOf = (tool: ToolDefinition): ServerToolRef => ({
      organizationId: organization.id,
      serverId: server.id,
      toolId: tool.id,
      toolName: tool.name,
    });
    for (const tool of tools)
      await setServerToolState(orm.em.fork(), refOf(tool), { status: ServerToolStatus.INSTALLING, workflowId: `wf-${tool.id}` });

    // Each write is timed until the API's hub (its LISTEN connection) delivers the tool's INSTALLED event.
    const heard = new Map<string, () => void>();
    const unsubscribe = events.subscribe((event) => {
      if (event.type === 'server:tool' && event.status === ServerToolStatus.INSTALLED) heard.get(event.toolId)?.();
    });
    const untilHeard = (tool: ToolDefinition) => new Promise<void>((resolve) => heard.set(tool.id, resolve));
    const outcome = (tool: ToolDefinition) => ({
      change: {
        status: ServerToolStatus.INSTALLED,
        installedVersion: '1.0.0',
        installedAt: new Date(),
        lastError: null,
        logTail: 'noop 1.0.0\n',
        checkedAt: new Date(),
      },
      audit: {
        action: 'server.tool_installed',
        resourceType: 'server',
        resourceId: server.id,
        changes: { toolId: tool.id, toolName: tool.name, status: 'INSTALLED', version: '1.0.0', workflowId: `wf-${tool.id}` },
      },
    });

    let next = 0;
    const oneStatement = async () => {
      const tool = tools[next++]!;
      const heardIt = untilHeard(tool);
      const { change, audit } = outcome(tool);
      const done = await setServerToolState(
        orm.em.fork(),
        refOf(tool),
        change,
        { workflowId: `wf-${tool.id}`, from: BUSY_STATUSES },
        audit,
      );
      if (!done) throw new Error('the write did not apply');
      await heardIt;
    };
    const lockThenUpdate = async () => {
      const tool = tools[next++]!;
      const heardIt = untilHeard(tool);
      const { change, audit } = outcome(tool);
      await orm.em.fork().transactional(async (tx) => {
        const [row] = await tx.execute<Array<{ id: string; status: ServerToolStatus; workflow_id: string }>>(
          'select id, status, installed_version, last_error, workflow_id from server_tools where server_id = ? and tool_id = ? for update',
          [server.id, tool.id],
        );
        if (!row || row.workflow_id !== `wf-${tool.id}` || !BUSY_STATUSES.includes(row.status)) throw new Error('the guard failed');
        await tx.execute(
          `update server_tools set status = ?, installed_version = ?, installed_at = ?, last_error = null, log_tail = ?, checked_at = ?, updated_at = now() where id = ?`,
          [change.status, change.installedVersion, change.installedAt, change.logTail, change.checkedAt, row.id],
        );
        await tx.execute(
          `insert into audit_logs (id, created_at, organization_id, action, resource_type, resource_id, changes) values (gen_random_uuid(), now(), ?, ?, ?, ?, ?::jsonb)`,
          [organization.id, audit.action, audit.resourceType, audit.resourceId, JSON.stringify(audit.changes)],
        );
        const event = serverToolEvent(
          { serverId: server.id, toolId: tool.id, status: change.status, installedVersion: change.installedVersion },
          tool.name,
          organization.id,
          row.status,
        );
        await tx.execute('select pg_notify(?, ?)', [EVENTS_CHANNEL, JSON.stringify(event)]);
      });
      await heardIt;
    };

    const verdict = await compareRoundTrips({
      name: 'tool-install final write bench',
      count: WRITES,
      warmup: WARMUP,
      platform: { label: 'setServerToolState, one statement → event heard', run: oneStatement },
      baseline: { label: 'lock-then-update transaction (before) → event heard', run: lockThenUpdate },
      adds: 'the one statement adds',
      targetAddedMs: 0,
    });
    unsubscribe();
    return verdict;
  } finally {
    await stack.stop();
  }
}

if (require.main === module) {
  benchToolInstallWrite()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
