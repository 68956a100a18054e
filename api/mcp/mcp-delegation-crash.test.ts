import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import request from 'supertest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import type { AgentHost } from '../../host/server';
import { Execution } from '../../entities';
import type { FleetAccess } from '../../lib/host-contract';
import { startApiServer, type ApiServer } from '../server';
import { registerAccount, type Account, type Http } from '../../test/api';
import { activeAgent, registerHost, waitFor } from '../../test/fleet';
import { createTestContext, spawnWorkerProcess, startTestWorker, type TestContext } from '../../test/harness';

/**
 * A worker process SIGKILLed while the parent's workflow handles a `delegate` Update (the child's
 * row is written, the child workflow maybe not started yet): the next worker handles the Update
 * again, finds the child its first try recorded (keyed by the Update's id), and the call still
 * answers that one child, which runs to its end.
 */
describe('a worker killed during delegation', () => {
  let ctx: TestContext;
  let api: ApiServer;
  let http: Http;
  let admin: Account;
  let host: AgentHost;
  const processes: ChildProcess[] = [];
  const closers: Array<() => Promise<unknown> | unknown> = [];

  beforeAll(async () => {
    ctx = await createTestContext();
    api = await startApiServer(ctx, 0, '127.0.0.1');
    http = request(api.url);
    admin = await registerAccount(http, 'Delegation Crash Org');
  });
  afterAll(async () => {
    for (const child of processes) if (child.exitCode === null) child.kill('SIGKILL');
    for (const close of closers.reverse()) await close();
    await api?.close();
    await ctx?.close();
  });

  it('starts exactly one child for the delegate call', async () => {
    const registered = await registerHost(http, admin);
    host = registered.host;
    closers.push(() => host.close());
    // Validation on an in-process worker; the runs on real worker processes.
    const validator = await startTestWorker(ctx);
    const master = await activeAgent(http, admin, registered.serverId, { role: 'MASTER' });
    const worker = await activeAgent(http, admin, registered.serverId, { supervisorId: master.id });
    await validator.stop();

    const first = spawnWorkerProcess(ctx);
    processes.push(first);
    const auth = { type: 'bearer' } as const;
    const parent = (
      await http
        .post(`/api/agents/${master.id}/execute`)
        .auth(admin.accessToken, auth)
        .send({ prompt: `[hang] ${randomUUID()}` })
        .expect(202)
    ).body.executionId as string;
    const call = await host.waitForCall('execute_prompt', (c) => c.args.executionId === parent, 60_000);
    const fleet = call.args.fleet as FleetAccess;

    const client = new Client({ name: 'delegation-crash-test', version: '1.0.0' });
    await client.connect(
      new StreamableHTTPClientTransport(new URL('/mcp', api.url), { requestInit: { headers: { Authorization: `Bearer ${fleet.token}` } } }),
    );
    closers.push(() => client.close());
    const delegating = client.callTool(
      { name: 'delegate', arguments: { agent: worker.id, prompt: 'after a crash [steps:2]' } },
      undefined,
      {
        timeout: 180_000,
        resetTimeoutOnProgress: true,
        onprogress: () => undefined,
      },
    );

    // Killed as soon as the Update's local activity has written the child.
    const children = () => ctx.orm.em.fork().find(Execution, { parentExecution: parent });
    await waitFor(async () => (await children()).length > 0, 60_000, 5);
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    const second = spawnWorkerProcess(ctx);
    processes.push(second);

    const answer = (await delegating) as CallToolResult;
    expect(answer.structuredContent).toMatchObject({ status: 'COMPLETED', output: 'chunk 1\nchunk 2\n' });
    const rows = await children();
    expect(rows.map((r) => r.id)).toEqual([answer.structuredContent!.executionId]);

    await http.post(`/api/executions/${parent}/cancel`).auth(admin.accessToken, auth).expect(202);
    await waitFor(async () => (await ctx.orm.em.fork().findOneOrFail(Execution, parent)).status === 'CANCELLED', 120_000);
    second.kill('SIGTERM');
    await new Promise((r) => second.once('exit', r));
  });
});
