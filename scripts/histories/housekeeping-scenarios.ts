/**
 * The recording scenarios of scripts/record-histories.ts for the workflows around the runs: tool
 * installs, server and system checks, agent provisioning and retirement, the run reconcile and
 * webhook deliveries. The runs' own scenarios (agent executions, delegations, task runs) stay there.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registerHost, waitFor } from '../../test/fleet';
import { catalogEntry, versionFileTool } from '../../test/tool-fixtures';
import { executionWorkflowId } from '../../workflows/contracts/agent-execution';
import { agentProvisionWorkflowId } from '../../workflows/contracts/agent-provision';
import { agentRetireWorkflowId } from '../../workflows/contracts/agent-retire';
import { RUN_RECONCILE_WORKFLOW, type RunReconcileWorkflow } from '../../workflows/contracts/run-reconcile';
import { SERVER_HEALTH_WORKFLOW, type ServerHealthWorkflow } from '../../workflows/contracts/server-check';
import { SYSTEM_CHECK_WORKFLOW, type SystemCheckWorkflow } from '../../workflows/contracts/system-check';
import { toolInstallWorkflowId } from '../../workflows/contracts/tool-install';
import { webhookDeliveryWorkflowId } from '../../workflows/contracts/webhook-delivery';
import { api, type Stage } from './stage';

/** Tool installs (installed, failed, uninstalled) and the server checks: one server, the health run over several, the system check. */
export async function tools(stage: Stage): Promise<void> {
  const { ctx, http, admin, rec } = stage;
  const { serverId } = await stage.agent({ allowCommands: true });
  const auth = { Authorization: `Bearer ${admin.accessToken}` };
  const good = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('1.2.3'));
  const broken = await catalogEntry(ctx.orm, admin.organizationId, {
    installCommand: 'exit 3',
    uninstallCommand: 'true',
    versionCommand: 'false',
  });
  await http.post(`/api/tools/server/${serverId}/install`).set(auth).send({ toolId: good.id }).expect(202);
  await rec.closed(toolInstallWorkflowId(serverId, good.id), 'tool-install-installed');
  await http.post(`/api/tools/server/${serverId}/install`).set(auth).send({ toolId: broken.id }).expect(202);
  await rec.closed(toolInstallWorkflowId(serverId, broken.id), 'tool-install-failed');

  // Checks, with an installed tool whose version the health run asks again (drift).
  await http.post(`/api/servers/${serverId}/test`).set(auth).expect(200);
  const checks = await waitFor(async () => {
    const found = [];
    for await (const w of ctx.temporal.client.workflow.list({
      query: `WorkflowType="serverCheck" AND WorkflowId STARTS_WITH "server-test-${serverId}"`,
    }))
      found.push(w.workflowId);
    return found.length ? found : undefined;
  });
  await rec.closed(checks[0]!, 'server-check-online');
  const health = await ctx.temporal.client.workflow.start<ServerHealthWorkflow>(SERVER_HEALTH_WORKFLOW, {
    taskQueue: ctx.config.temporal.taskQueue,
    workflowId: `server-health-${randomUUID()}`,
    // One server that answers, one deleted between listing and checking.
    args: [{ concurrency: 2, serverIds: [serverId, randomUUID()] }],
  });
  await rec.closed(health.workflowId, 'server-health');

  const system = await ctx.temporal.client.workflow.start<SystemCheckWorkflow>(SYSTEM_CHECK_WORKFLOW, {
    taskQueue: ctx.config.temporal.taskQueue,
    workflowId: `system-check-${randomUUID()}`,
  });
  await rec.closed(system.workflowId, 'system-check');

  await http.delete(`/api/tools/server/${serverId}/${good.id}`).set(auth).expect(202);
  await rec.closed(toolInstallWorkflowId(serverId, good.id), 'tool-install-uninstalled');
}

/** Agent provisioning (active, and failed on a host that went away) and retirement. */
export async function agents(stage: Stage): Promise<void> {
  const { http, admin, rec } = stage;
  const auth = { Authorization: `Bearer ${admin.accessToken}` };
  const { id, serverId } = await stage.agent();
  await rec.closed(agentProvisionWorkflowId(id), 'agent-provision-active');
  // A second agent on the same server, whose host then goes away: provisioning fails.
  const { host: gone, serverId: goneServer } = await registerHost(http, admin);
  await gone.close();
  const created = await http
    .post('/api/agents')
    .set(auth)
    .send({ serverId: goneServer, name: `agent-${randomUUID().slice(0, 8)}` })
    .expect(201);
  await http.post(`/api/agents/${created.body.id}/validate`).set(auth);
  await rec.closed(agentProvisionWorkflowId(created.body.id), 'agent-provision-failed');

  await http.delete(`/api/agents/${id}`).set(auth).expect(204);
  await rec.closed(agentRetireWorkflowId(id), 'agent-retire-removed');
  void serverId;
}

/** A run whose workflow an operator terminated, ended by the run reconcile (its task cancelled on the host). */
export async function runReconcile(stage: Stage): Promise<void> {
  const { ctx, rec } = stage;
  const runs = api(stage);
  const { id: agentId } = await stage.agent();
  const hanging = await runs.execute(agentId, 'hang [hang]');
  await runs.status(hanging, 'RUNNING');
  await ctx.temporal.client.workflow.getHandle(executionWorkflowId(hanging)).terminate('recording the run reconcile');
  const taskQueue = ctx.config.temporal.taskQueue;
  // The reconcile lists closed workflows through visibility, which lags them.
  await waitFor(async () => {
    for await (const w of ctx.temporal.client.workflow.list({
      query: `WorkflowType = 'agentExecution' AND ExecutionStatus = 'Terminated' AND TaskQueue = '${taskQueue}'`,
    }))
      if (w.workflowId === executionWorkflowId(hanging)) return true;
    return false;
  });
  const reconcile = await ctx.temporal.client.workflow.start<RunReconcileWorkflow>(RUN_RECONCILE_WORKFLOW, {
    taskQueue,
    workflowId: `run-reconcile-${randomUUID()}`,
    args: [{ lookbackSeconds: 3600, taskQueue }],
  });
  await rec.closed(reconcile.workflowId, 'run-reconcile-ended');
  await runs.status(hanging, 'CANCELLED');
}

/** Deliveries to a receiver that answers 500 (Retry-After 1 s) once, then 204 (one retry, one timer), and to one that answers 410 (refused for good). */
export async function webhooks(stage: Stage): Promise<void> {
  const { http, admin, rec } = stage;
  const auth = { Authorization: `Bearer ${admin.accessToken}` };
  let seen = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/gone') res.writeHead(410).end();
      else if (seen++ === 0) res.writeHead(500, { 'retry-after': '1' }).end();
      else res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const [target, name] of [
      ['/hooks', 'webhook-delivery-retried-delivered'],
      ['/gone', 'webhook-delivery-refused'],
    ] as const) {
      const hook = (
        await http
          .post('/api/webhooks')
          .set(auth)
          .send({ url: `${base}${target}`, events: ['execution.failed'] })
          .expect(201)
      ).body as { id: string };
      const sent = (await http.post(`/api/webhooks/${hook.id}/test`).set(auth).expect(202)).body as { id: string };
      await rec.closed(webhookDeliveryWorkflowId(sent.id), name);
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
