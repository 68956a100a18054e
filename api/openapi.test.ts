import { randomUUID } from 'node:crypto';
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { Response } from 'supertest';
import type { AgentHost } from '../host/server';
import { httpFor, PASSWORD, registerAccount, type Account, type Http } from '../test/api';
import { activeAgent, registerHost, waitFor } from '../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../test/harness';
import { catalogEntry, removeToolDirs, versionFileTool, waitForToolState } from '../test/tool-fixtures';

/**
 * The published OpenAPI document against the real application: every operation it lists is
 * called at least once with a success, and each answer's status, content type and body must be
 * what the document says for that status (a JSON Schema validator, ajv, over the document's
 * own schemas). A Location in an answer must resolve at once. Then what each path answers to
 * the methods it does not serve, and whether the document says the constraints the routes
 * enforce: each row of `CONSTRAINTS` is refused by the route (400 on its field) and by the
 * document's request schema alike.
 *
 * Adding an operation without a case here fails 'has a case for every operation'.
 */

type Spec = {
  paths: Record<
    string,
    Record<
      string,
      {
        responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
        parameters?: { name: string; in: string; schema: unknown }[];
        requestBody?: { content: Record<string, { schema: unknown }> };
      }
    >
  >;
  components: Record<string, unknown>;
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

/** A uuid zod takes (version 4, RFC variant) that names nothing. */
const nobody = () => randomUUID();

describe('the OpenAPI document against the application', () => {
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let http: Http;
  let spec: Spec;
  let ajv: Ajv2020;
  let admin: Account;
  const hosts: AgentHost[] = [];
  /** What the cases share: made once, before them. */
  const fx = {} as {
    serverId: string;
    host: AgentHost;
    agentId: string;
    masterServerId: string;
    finishedRunId: string;
    toolId: string;
  };

  const as = (account: Account = admin) => ({ Authorization: `Bearer ${account.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    spec = (await http.get('/api/openapi.json').expect(200)).body as Spec;
    ajv = new Ajv2020({ strict: false, allErrors: true });
    addFormats(ajv);
    ajv.addSchema({ $id: 'spec', components: spec.components });

    admin = await registerAccount(http, 'Spec Org');
    const main = await registerHost(http, admin, { allowCommands: true });
    hosts.push(main.host);
    Object.assign(fx, { serverId: main.serverId, host: main.host });
    await http.post(`/api/servers/${fx.serverId}/test`).set(as()).expect(200);
    fx.agentId = (await activeAgent(http, admin, fx.serverId, { maxConcurrency: 10 })).id;
    const master = await registerHost(http, admin);
    hosts.push(master.host);
    fx.masterServerId = master.serverId;
    await activeAgent(http, admin, master.serverId, { role: 'MASTER', name: 'master' });
    fx.finishedRunId = await execute('a finished run [steps:2]');
    await finished(fx.finishedRunId);
    fx.toolId = (await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('1.2.3'))).id;
  }, 120_000);
  afterAll(async () => {
    for (const host of hosts) await host.close();
    removeToolDirs();
    await worker?.stop();
    await ctx?.close();
  });

  async function execute(prompt: string): Promise<string> {
    return (await http.post(`/api/agents/${fx.agentId}/execute`).set(as()).send({ prompt }).expect(202)).body.executionId as string;
  }
  async function finished(executionId: string): Promise<void> {
    await waitFor(
      async () =>
        ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'].includes(
          (await http.get(`/api/executions/${executionId}`).set(as())).body.status,
        ),
      30_000,
      100,
    );
  }
  async function statusIs(executionId: string, status: string): Promise<void> {
    await waitFor(async () => (await http.get(`/api/executions/${executionId}`).set(as())).body.status === status, 30_000, 50);
  }
  const newTask = async (body: Record<string, unknown> = {}) =>
    (
      await http
        .post('/api/tasks')
        .set(as())
        .send({ title: 'spec task', agentId: fx.agentId, prompt: 'task run [steps:1]', ...body })
        .expect(201)
    ).body as { id: string };
  const newUser = async () =>
    (
      await http
        .post('/api/users')
        .set(as())
        .send({ email: `spec-${randomUUID().slice(0, 8)}@example.test`, name: 'Spec User', role: 'VIEWER', password: PASSWORD })
        .expect(201)
    ).body as { id: string };
  /** A catalog entry's commands (versionFileTool's, without its paths). */
  const commands = (version: string) => {
    const { installCommand, uninstallCommand, versionCommand, versionRegex } = versionFileTool(version);
    return { installCommand, uninstallCommand, versionCommand, versionRegex };
  };
  const newTool = async () =>
    (
      await http
        .post('/api/tools')
        .set(as())
        .send({ name: `spec-${randomUUID().slice(0, 8)}`, category: 'cli', ...commands('2.0.0') })
        .expect(201)
    ).body as { id: string };
  const newWebhook = async () =>
    (
      await http
        .post('/api/webhooks')
        .set(as())
        .send({ url: 'http://127.0.0.1:9/spec', events: ['execution.failed'] })
        .expect(201)
    ).body as { id: string };
  const login = async () =>
    (await http.post('/api/auth/login').send({ email: admin.email, password: PASSWORD }).expect(200)).body as { refreshToken: string };

  /**
   * One success per operation, keyed as the document names it. A case may answer several
   * responses, to cover the shapes of one status (a field null and set, say), and what to wait
   * for once they are checked (`settle`: the change they started, before the next case).
   */
  type Answers = Response | Response[] | { answers: Response[]; settle: () => Promise<unknown> };
  const CASES: Record<string, () => Promise<Answers>> = {
    'GET /api/health': async () => http.get('/api/health'),
    'POST /api/auth/register': async () =>
      http
        .post('/api/auth/register')
        .send({ email: `spec-${randomUUID().slice(0, 8)}@example.test`, password: PASSWORD, name: 'Spec', organizationName: 'Spec Two' }),
    'POST /api/auth/login': async () => http.post('/api/auth/login').send({ email: admin.email, password: PASSWORD }),
    'POST /api/auth/refresh': async () => http.post('/api/auth/refresh').send({ refreshToken: (await login()).refreshToken }),
    'POST /api/auth/logout': async () => http.post('/api/auth/logout').send({ refreshToken: (await login()).refreshToken }),
    'GET /api/auth/me': async () => http.get('/api/auth/me').set(as()),
    'GET /api/users': async () => [await http.get('/api/users').set(as()), await http.get('/api/users').query({ limit: 1 }).set(as())],
    'POST /api/users': async () =>
      http
        .post('/api/users')
        .set(as())
        .send({ email: `spec-${randomUUID().slice(0, 8)}@example.test`, name: 'New', role: 'OPERATOR', password: PASSWORD }),
    'GET /api/users/{id}': async () => http.get(`/api/users/${admin.userId}`).set(as()),
    'PATCH /api/users/{id}': async () =>
      http
        .patch(`/api/users/${(await newUser()).id}`)
        .set(as())
        .send({ role: 'MANAGER' }),
    'DELETE /api/users/{id}': async () => http.delete(`/api/users/${(await newUser()).id}`).set(as()),
    'GET /api/audit': async () => http.get('/api/audit').set(as()),
    'GET /api/audit/{id}': async () => http.get(`/api/audit/${(await http.get('/api/audit').set(as())).body.items[0].id}`).set(as()),
    'GET /api/servers': async () => http.get('/api/servers').set(as()),
    'POST /api/servers': async () => {
      const host = (await registerHost(http, admin)).host;
      hosts.push(host);
      return http
        .post('/api/servers')
        .set(as())
        .send({ name: `spec-${randomUUID().slice(0, 8)}`, url: host.url, masterToken: host.token, description: 'a second one' });
    },
    'GET /api/servers/{id}': async () => http.get(`/api/servers/${fx.serverId}`).set(as()),
    'PUT /api/servers/{id}': async () => http.put(`/api/servers/${fx.serverId}`).set(as()).send({ description: 'the main host' }),
    'DELETE /api/servers/{id}': async () => {
      const { host, serverId } = await registerHost(http, admin);
      hosts.push(host);
      return http.delete(`/api/servers/${serverId}`).set(as());
    },
    'POST /api/servers/{id}/test': async () => http.post(`/api/servers/${fx.serverId}/test`).set(as()),
    'POST /api/servers/{id}/health': async () => http.post(`/api/servers/${fx.serverId}/health`).set(as()),
    'GET /api/agents': async () => http.get('/api/agents').set(as()),
    'POST /api/agents': async () =>
      http
        .post('/api/agents')
        .set(as())
        .send({ serverId: fx.serverId, name: `spec-${randomUUID().slice(0, 8)}`, supervisorId: fx.agentId, capabilities: ['git'] }),
    'GET /api/agents/{id}': async () => http.get(`/api/agents/${fx.agentId}`).set(as()),
    'PUT /api/agents/{id}': async () => http.put(`/api/agents/${fx.agentId}`).set(as()).send({ description: 'does the spec runs' }),
    'DELETE /api/agents/{id}': async () => {
      const created = await http
        .post('/api/agents')
        .set(as())
        .send({ serverId: fx.serverId, name: `gone-${randomUUID().slice(0, 8)}` })
        .expect(201);
      return http.delete(`/api/agents/${created.body.id}`).set(as());
    },
    'GET /api/agents/{id}/hierarchy': async () => http.get(`/api/agents/${fx.agentId}/hierarchy`).set(as()),
    'POST /api/agents/{id}/validate': async () => {
      const created = await http
        .post('/api/agents')
        .set(as())
        .send({ serverId: fx.serverId, name: `valid-${randomUUID().slice(0, 8)}` })
        .expect(201);
      return http.post(`/api/agents/${created.body.id}/validate`).set(as());
    },
    'GET /api/agents/{id}/status': async () => http.get(`/api/agents/${fx.agentId}/status`).set(as()),
    'POST /api/agents/{id}/execute': async () =>
      http
        .post(`/api/agents/${fx.agentId}/execute`)
        .set(as())
        .send({ prompt: 'from the spec test [steps:1]', context: { ticket: 42 } }),
    'GET /api/executions': async () => http.get('/api/executions').set(as()),
    'GET /api/executions/{id}': async () => {
      const asking = await execute('[ask:Which colour?] done');
      await statusIs(asking, 'WAITING_INPUT');
      const waiting = await http.get(`/api/executions/${asking}`).set(as());
      await http.post(`/api/executions/${asking}/input`).set(as()).send({ action: 'decline' }).expect(200);
      return [await http.get(`/api/executions/${fx.finishedRunId}`).set(as()), waiting];
    },
    'GET /api/executions/{id}/events': async () => http.get(`/api/executions/${fx.finishedRunId}/events`).set(as()),
    'POST /api/executions/{id}/cancel': async () => {
      const hanging = await execute('hold on [hang]');
      await fx.host.waitForCall('execute_prompt', (c) => c.args.executionId === hanging, 15_000);
      return http.post(`/api/executions/${hanging}/cancel`).set(as());
    },
    'POST /api/executions/{id}/input': async () => {
      const asking = await execute('[ask:Which branch?] done');
      await statusIs(asking, 'WAITING_INPUT');
      return http
        .post(`/api/executions/${asking}/input`)
        .set(as())
        .send({ action: 'accept', content: { answer: 'main' } });
    },
    'POST /api/master/execute': async () =>
      http.post('/api/master/execute').set(as()).send({ serverId: fx.masterServerId, prompt: 'plan the week [steps:1]' }),
    'POST /api/master/create-agent': async () =>
      http
        .post('/api/master/create-agent')
        .set(as())
        .send({
          serverId: fx.masterServerId,
          prompt: `[spec]{"name":"bot-${randomUUID().slice(0, 8)}","role":"WORKER","capabilities":["git"]}`,
        }),
    'GET /api/tools': async () => http.get('/api/tools').set(as()),
    'POST /api/tools': async () =>
      http
        .post('/api/tools')
        .set(as())
        .send({ name: `spec-${randomUUID().slice(0, 8)}`, category: 'cli', homepage: 'https://example.com', ...commands('1.0.0') }),
    'GET /api/tools/{id}': async () => http.get(`/api/tools/${fx.toolId}`).set(as()),
    'PUT /api/tools/{id}': async () =>
      http
        .put(`/api/tools/${(await newTool()).id}`)
        .set(as())
        .send({ description: 'changed', homepage: null }),
    'DELETE /api/tools/{id}': async () => http.delete(`/api/tools/${(await newTool()).id}`).set(as()),
    'GET /api/tools/agent/{agentId}/permissions': async () => http.get(`/api/tools/agent/${fx.agentId}/permissions`).set(as()),
    'PUT /api/tools/agent/{agentId}/permissions': async () =>
      http
        .put(`/api/tools/agent/${fx.agentId}/permissions`)
        .set(as())
        .send({ permissions: [{ toolId: fx.toolId, canUse: true, allowedCommands: ['status'] }] }),
    'GET /api/tools/server/{serverId}': async () => http.get(`/api/tools/server/${fx.serverId}`).set(as()),
    'GET /api/tools/server/{serverId}/{toolId}': async () => http.get(`/api/tools/server/${fx.serverId}/${fx.toolId}`).set(as()),
    'POST /api/tools/server/{serverId}/install': async () => {
      const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('3.0.0'));
      const started = await http.post(`/api/tools/server/${fx.serverId}/install`).set(as()).send({ toolId: tool.id });
      return { answers: [started], settle: () => waitForToolState(http, admin, fx.serverId, tool.id, ['INSTALLED', 'FAILED']) };
    },
    'DELETE /api/tools/server/{serverId}/{toolId}': async () => {
      const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('4.0.0'));
      await http.post(`/api/tools/server/${fx.serverId}/install`).set(as()).send({ toolId: tool.id }).expect(202);
      await waitForToolState(http, admin, fx.serverId, tool.id, ['INSTALLED']);
      const started = await http.delete(`/api/tools/server/${fx.serverId}/${tool.id}`).set(as());
      return { answers: [started], settle: () => waitForToolState(http, admin, fx.serverId, tool.id, ['NOT_INSTALLED', 'FAILED']) };
    },
    'POST /api/tools/server/{serverId}/{toolId}/cancel': async () => {
      const tool = await catalogEntry(ctx.orm, admin.organizationId, versionFileTool('5.0.0', 30));
      await http.post(`/api/tools/server/${fx.serverId}/install`).set(as()).send({ toolId: tool.id }).expect(202);
      await fx.host.waitForCall('install_tool', (c) => c.args.name === tool.name, 15_000);
      const cancelled = await http.post(`/api/tools/server/${fx.serverId}/${tool.id}/cancel`).set(as());
      return { answers: [cancelled], settle: () => waitForToolState(http, admin, fx.serverId, tool.id, ['FAILED']) };
    },
    'GET /api/tasks': async () => {
      await newTask({ executionMode: 'RECURRING', cronExpression: '0 9 * * 1-5', timezone: 'Europe/Paris', enabled: false });
      return http.get('/api/tasks').set(as());
    },
    'POST /api/tasks': async () =>
      http
        .post('/api/tasks')
        .set(as())
        .send({
          title: 'created',
          assignmentMode: 'AUTO',
          prompt: 'p',
          executionMode: 'SCHEDULED',
          scheduledAt: new Date(Date.now() + 86_400_000).toISOString(),
          enabled: false,
        }),
    'POST /api/tasks/preview-schedule': async () =>
      http.post('/api/tasks/preview-schedule').set(as()).send({ cronExpression: '0 9 * * 1-5', timezone: 'Europe/Paris' }),
    'GET /api/tasks/{id}': async () => {
      const task = await newTask();
      const before = await http.get(`/api/tasks/${task.id}`).set(as());
      const run = (await http.post(`/api/tasks/${task.id}/run`).set(as()).expect(202)).body.executionId as string;
      await finished(run);
      return [before, await http.get(`/api/tasks/${task.id}`).set(as())];
    },
    'PUT /api/tasks/{id}': async () =>
      http
        .put(`/api/tasks/${(await newTask()).id}`)
        .set(as())
        .send({ description: 'changed', timeoutMs: 60_000 }),
    'DELETE /api/tasks/{id}': async () => http.delete(`/api/tasks/${(await newTask()).id}`).set(as()),
    'POST /api/tasks/{id}/pause': async () => http.post(`/api/tasks/${(await newTask()).id}/pause`).set(as()),
    'POST /api/tasks/{id}/resume': async () => http.post(`/api/tasks/${(await newTask({ enabled: false })).id}/resume`).set(as()),
    'POST /api/tasks/{id}/run': async () => http.post(`/api/tasks/${(await newTask()).id}/run`).set(as()),
    'POST /api/tasks/{id}/cancel': async () => {
      const task = await newTask({ prompt: 'stay [hang]' });
      const run = (await http.post(`/api/tasks/${task.id}/run`).set(as()).expect(202)).body.executionId as string;
      await fx.host.waitForCall('execute_prompt', (c) => c.args.executionId === run, 15_000);
      return http.post(`/api/tasks/${task.id}/cancel`).set(as()).send({});
    },
    'GET /api/tasks/{id}/executions': async () => {
      const task = await newTask();
      await finished((await http.post(`/api/tasks/${task.id}/run`).set(as()).expect(202)).body.executionId as string);
      return http.get(`/api/tasks/${task.id}/executions`).set(as());
    },
    'POST /api/api-keys': async () =>
      http
        .post('/api/api-keys')
        .set(as())
        .send({ name: 'spec', role: 'VIEWER', expiresAt: new Date(Date.now() + 3_600_000).toISOString() }),
    'GET /api/api-keys': async () => {
      const { key } = (await http.post('/api/api-keys').set(as()).send({ name: 'spec list' }).expect(201)).body as { key: string };
      // One that was used, so `lastUsedAt` is in the answer too.
      await http.get('/api/auth/me').set('Authorization', `Bearer ${key}`).expect(200);
      return [await http.get('/api/api-keys').set(as()), await http.get('/api/api-keys').query({ limit: 1 }).set(as())];
    },
    'DELETE /api/api-keys/{id}': async () =>
      http
        .delete(`/api/api-keys/${(await http.post('/api/api-keys').set(as()).send({ name: 'spec revoke' }).expect(201)).body.id}`)
        .set(as()),
    'POST /mcp': async () => {
      const { key } = (await http.post('/api/api-keys').set(as()).send({ name: 'spec mcp' }).expect(201)).body as { key: string };
      const mcp = (message: Record<string, unknown>) =>
        http
          .post('/mcp')
          .set('Authorization', `Bearer ${key}`)
          .set('Accept', 'application/json, text/event-stream')
          .send({ jsonrpc: '2.0', ...message });
      return [
        await mcp({
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'spec', version: '1' } },
        }),
        await mcp({ method: 'notifications/initialized' }),
        await mcp({ id: 2, method: 'tools/call', params: { name: 'list_agents', arguments: {} } }),
      ];
    },
    'GET /api/webhooks': async () => {
      await newWebhook();
      return [await http.get('/api/webhooks').set(as()), await http.get('/api/webhooks').query({ limit: 1 }).set(as())];
    },
    'POST /api/webhooks': async () =>
      http
        .post('/api/webhooks')
        .set(as())
        .send({ url: 'http://127.0.0.1:9/spec', events: ['execution.failed'], description: 'spec' }),
    'GET /api/webhooks/{id}': async () => {
      const { id } = await newWebhook();
      await http.post(`/api/webhooks/${id}/rotate-secret`).set(as()).expect(200);
      return [await http.get(`/api/webhooks/${(await newWebhook()).id}`).set(as()), await http.get(`/api/webhooks/${id}`).set(as())];
    },
    'PUT /api/webhooks/{id}': async () =>
      http
        .put(`/api/webhooks/${(await newWebhook()).id}`)
        .set(as())
        .send({ enabled: false, description: null }),
    'DELETE /api/webhooks/{id}': async () => http.delete(`/api/webhooks/${(await newWebhook()).id}`).set(as()),
    'POST /api/webhooks/{id}/rotate-secret': async () => http.post(`/api/webhooks/${(await newWebhook()).id}/rotate-secret`).set(as()),
    'POST /api/webhooks/{id}/test': async () => http.post(`/api/webhooks/${(await newWebhook()).id}/test`).set(as()),
    'GET /api/webhooks/{id}/deliveries': async () => {
      const { id } = await newWebhook();
      await http.post(`/api/webhooks/${id}/test`).set(as()).expect(202);
      return [
        await http.get(`/api/webhooks/${id}/deliveries`).set(as()),
        await http.get(`/api/webhooks/${id}/deliveries`).query({ limit: 1 }).set(as()),
      ];
    },
    'POST /api/webhooks/{id}/deliveries/{deliveryId}/redeliver': async () => {
      // Port 9 (discard) refuses the connection on loopback: the delivery retries, PENDING, until the endpoint is disabled.
      const { id } = await newWebhook();
      const deliveryId = (await http.post(`/api/webhooks/${id}/test`).set(as()).expect(202)).body.id as string;
      await http.put(`/api/webhooks/${id}`).set(as()).send({ enabled: false }).expect(200);
      await waitFor(
        async () => (await http.get(`/api/webhooks/${id}/deliveries`).set(as())).body.items[0].status === 'FAILED',
        30_000,
        100,
      );
      return http.post(`/api/webhooks/${id}/deliveries/${deliveryId}/redeliver`).set(as());
    },
  };

  const operations = () =>
    Object.entries(spec.paths)
      .flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();

  /** A schema of the document, compiled with its references to the document's components. */
  const compiled = new Map<string, ValidateFunction>();
  function validatorFor(key: string, schema: unknown): ValidateFunction {
    const withRefs = (node: unknown): unknown =>
      Array.isArray(node)
        ? node.map(withRefs)
        : node && typeof node === 'object'
          ? Object.fromEntries(
              Object.entries(node).map(([k, v]) => [
                k,
                k === '$ref' && typeof v === 'string' && v.startsWith('#/') ? `spec${v}` : withRefs(v),
              ]),
            )
          : node;
    let validate = compiled.get(key);
    if (!validate) compiled.set(key, (validate = ajv.compile(withRefs(schema) as object)));
    return validate;
  }

  /** The answer is one the document declares for the operation: status, content type, body. */
  function conforms(operation: string, res: Response): void {
    const [method, path] = operation.split(' ') as [string, string];
    const responses = spec.paths[path]![method.toLowerCase()]!.responses;
    const declared = responses[String(res.status)] ?? (res.status >= 400 ? responses.default : undefined);
    if (!declared) throw new Error(`${operation} answered ${res.status}, which the document does not declare: ${res.text.slice(0, 500)}`);
    const content = declared.content;
    if (!content) {
      expect(res.text ?? '').toBe('');
      return;
    }
    const type = String(res.headers['content-type'] ?? '').split(';')[0]!;
    expect(Object.keys(content)).toContain(type);
    if (type !== 'application/json') return;
    const validate = validatorFor(`${operation} ${res.status}`, content['application/json']!.schema);
    if (!validate(res.body))
      throw new Error(
        `${operation} ${res.status}: the body is not what the document says: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(res.body).slice(0, 1500)}`,
      );
  }

  it('has a case for every operation', () => {
    expect(operations().filter((op) => !CASES[op])).toEqual([]);
    expect(Object.keys(CASES).filter((op) => !operations().includes(op))).toEqual([]);
  });

  // The document is fetched in beforeAll; the table is the cases, which name every operation.
  it.each(Object.keys(CASES))('%s answers what the document says, and its Location resolves at once', async (operation) => {
    const answered = await CASES[operation]!();
    const { answers, settle } = 'answers' in answered ? answered : { answers: [answered].flat(), settle: async () => undefined };
    for (const res of answers) {
      expect(res.status).toBeLessThan(300);
      conforms(operation, res);
      const location = res.headers.location as string | undefined;
      if (location) {
        const target = await http.get(location).set(as());
        if (target.status !== 200) throw new Error(`${operation}: its Location ${location} answered ${target.status} at once`);
        conforms(`GET ${templateOf(location)}`, target);
      }
    }
    await settle();
  });

  /** The document's path a concrete one is an instance of (`/api/tasks/<uuid>` → `/api/tasks/{id}`). */
  function templateOf(concrete: string): string {
    const matching = Object.keys(spec.paths).filter((path) => new RegExp(`^${path.replace(/\{\w+\}/g, '[^/]+')}$`).test(concrete));
    // A literal segment wins over a parameter, as in the router.
    return matching.sort((a, b) => (a.match(/\{/g)?.length ?? 0) - (b.match(/\{/g)?.length ?? 0))[0]!;
  }

  it('documents POST /mcp, which the MCP transport serves outside the route table: the API key it takes, its refusals as answered, and where the protocol is described', async () => {
    const operation = spec.paths['/mcp']!.post! as unknown as {
      security: unknown;
      description: string;
      responses: Record<string, { description: string; headers?: Record<string, unknown> }>;
    };
    expect(operation.security).toEqual([{ apiKeyAuth: [] }]);
    expect((spec.components as { securitySchemes: Record<string, unknown> }).securitySchemes.apiKeyAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
    });
    expect(operation.description).toContain('docs/mcp-endpoint.md');
    expect(operation.responses['401']!.description).toContain('api_key_required');
    expect(operation.responses['401']!.headers).toHaveProperty('WWW-Authenticate');
    expect(operation.responses['429']!.headers).toHaveProperty('Retry-After');

    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'spec', version: '1' } },
    };
    const jwt = await http.post('/mcp').set(as()).set('Accept', 'application/json, text/event-stream').send(initialize).expect(401);
    expect(jwt.body.error.code).toBe('api_key_required');
    conforms('POST /mcp', jwt);
    const { key } = (await http.post('/api/api-keys').set(as()).send({ name: 'spec mcp refusals' }).expect(201)).body as { key: string };
    const jsonOnly = await http.post('/mcp').set('Authorization', `Bearer ${key}`).set('Accept', 'application/json').send(initialize);
    expect(jsonOnly.status).toBe(406);
    conforms('POST /mcp', jsonOnly);
    const notJsonRpc = await http
      .post('/mcp')
      .set('Authorization', `Bearer ${key}`)
      .set('Accept', 'application/json, text/event-stream')
      .send({ hello: 'world' });
    expect(notJsonRpc.status).toBe(400);
    conforms('POST /mcp', notJsonRpc);
  });

  it('answers the methods a path does not serve with 405 and the same Allow as OPTIONS, which lists exactly the documented ones', async () => {
    const problems: string[] = [];
    for (const [path, item] of Object.entries(spec.paths)) {
      const concrete = path.replace(/\{\w+\}/g, () => nobody());
      const served = METHODS.filter((m) => item[m]).map((m) => m.toUpperCase());
      const allow = [...served, ...(served.includes('GET') ? ['HEAD'] : []), 'OPTIONS'].sort().join(', ');
      const options = await http.options(concrete);
      if (options.status !== 204 || options.headers.allow !== allow)
        problems.push(`OPTIONS ${path}: ${options.status} Allow: ${options.headers.allow} (documented: ${allow})`);
      for (const method of METHODS.filter((m) => !item[m])) {
        const res = await http[method](concrete).set(as()).send({});
        if (res.status !== 405 || res.headers.allow !== allow || res.body.error?.code !== 'method_not_allowed')
          problems.push(`${method.toUpperCase()} ${path}: ${res.status} ${res.body.error?.code} Allow: ${res.headers.allow}`);
      }
    }
    expect(problems).toEqual([]);
  });

  /**
   * Constraints the routes enforce, each written in the document: the route answers 400 on
   * `field`, and the document's request schema refuses the same value.
   */
  const CONSTRAINTS: {
    name: string;
    operation: string;
    in: 'body' | 'query' | 'path';
    field: string;
    value: () => Record<string, unknown>;
    path?: () => string;
  }[] = [
    {
      name: 'NUL in a string',
      operation: 'POST /api/tasks',
      in: 'body',
      field: 'body.title',
      value: () => ({ title: 'a\u0000b', prompt: 'p', assignmentMode: 'AUTO' }),
    },
    {
      name: 'a lone surrogate',
      operation: 'POST /api/tasks',
      in: 'body',
      field: 'body.description',
      value: () => ({ title: 't', description: 'x\uD800y', prompt: 'p', assignmentMode: 'AUTO' }),
    },
    { name: 'NUL in a query filter', operation: 'GET /api/users', in: 'query', field: 'query.q', value: () => ({ q: 'a\u0000' }) },
    {
      name: 'NUL in a free-form object key',
      operation: 'POST /api/agents/{id}/execute',
      in: 'body',
      field: 'body.context.a\\u0000',
      value: () => ({ prompt: 'x', context: { 'a\u0000': 1 } }),
    },
    {
      name: 'a cursor that is not one',
      operation: 'GET /api/tasks',
      in: 'query',
      field: 'query.cursor',
      value: () => ({ cursor: 'not a cursor!' }),
    },
    {
      name: 'a uuid zod refuses (version 0)',
      operation: 'GET /api/tasks/{id}',
      in: 'path',
      field: 'params.id',
      value: () => ({ id: '12345678-1234-0234-8234-123456789012' }),
    },
    {
      name: 'the year 0000',
      operation: 'GET /api/executions',
      in: 'query',
      field: 'query.from',
      value: () => ({ from: '0000-06-01T00:00:00Z' }),
    },
    { name: 'a task update with no field', operation: 'PUT /api/tasks/{id}', in: 'body', field: 'body', value: () => ({}) },
    { name: 'a server update with no field', operation: 'PUT /api/servers/{id}', in: 'body', field: 'body', value: () => ({}) },
    { name: 'an agent update with no field', operation: 'PUT /api/agents/{id}', in: 'body', field: 'body', value: () => ({}) },
    { name: 'a user update with no field', operation: 'PATCH /api/users/{id}', in: 'body', field: 'body', value: () => ({}) },
    { name: 'a catalog update with no field', operation: 'PUT /api/tools/{id}', in: 'body', field: 'body', value: () => ({}) },
    {
      name: 'a blank title',
      operation: 'POST /api/tasks',
      in: 'body',
      field: 'body.title',
      value: () => ({ title: '   ', prompt: 'p', assignmentMode: 'AUTO' }),
    },
    {
      name: 'a blank prompt',
      operation: 'POST /api/agents/{id}/execute',
      in: 'body',
      field: 'body.prompt',
      value: () => ({ prompt: ' \n\t ' }),
    },
    {
      name: 'a blank user name',
      operation: 'POST /api/users',
      in: 'body',
      field: 'body.name',
      value: () => ({ email: 'x@example.test', name: '  ', role: 'VIEWER', password: PASSWORD }),
    },
    {
      name: 'a blank display name',
      operation: 'POST /api/agents',
      in: 'body',
      field: 'body.displayName',
      value: () => ({ serverId: fx.serverId, name: 'blank-display', displayName: '  ' }),
    },
    {
      name: 'a blank server URL',
      operation: 'POST /api/servers',
      in: 'body',
      field: 'body.url',
      value: () => ({ name: 'blank-url', url: '   ', masterToken: 'token' }),
    },
    { name: 'a blank search', operation: 'GET /api/agents', in: 'query', field: 'query.q', value: () => ({ q: '   ' }) },
    { name: 'a blank audit action', operation: 'GET /api/audit', in: 'query', field: 'query.action', value: () => ({ action: '  ' }) },
    {
      name: 'a blank install command',
      operation: 'POST /api/tools',
      in: 'body',
      field: 'body.installCommand',
      value: () => ({ name: 'blank-install', category: 'cli', installCommand: '  ', uninstallCommand: 'x', versionCommand: 'x' }),
    },
    {
      name: 'a blank command in a grant',
      operation: 'PUT /api/tools/agent/{agentId}/permissions',
      in: 'body',
      field: 'body.permissions.0.allowedCommands.0',
      value: () => ({ permissions: [{ toolId: fx.toolId, canUse: true, allowedCommands: ['   '] }] }),
    },
    {
      name: 'a master token with white space',
      operation: 'POST /api/servers',
      in: 'body',
      field: 'body.masterToken',
      value: () => ({ name: 'spaced-token', url: 'http://127.0.0.1:1/mcp', masterToken: 'two words' }),
    },
    {
      name: 'more than 100 prompt variables',
      operation: 'POST /api/tasks',
      in: 'body',
      field: 'body.promptVariables',
      value: () => ({
        title: 't',
        prompt: 'p',
        assignmentMode: 'AUTO',
        promptVariables: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`v${i}`, 'x'])),
      }),
    },
    {
      name: 'a prompt variable name that is not one',
      operation: 'POST /api/tasks',
      in: 'body',
      field: 'body.promptVariables.1st',
      value: () => ({ title: 't', prompt: 'p', assignmentMode: 'AUTO', promptVariables: { '1st': 'x' } }),
    },
    {
      name: 'an offset for a time zone',
      operation: 'POST /api/tasks/preview-schedule',
      in: 'body',
      field: 'body.timezone',
      value: () => ({ cronExpression: '0 9 * * *', timezone: '+02:00' }),
    },
    {
      name: 'a cron with a character of no field',
      operation: 'POST /api/tasks/preview-schedule',
      in: 'body',
      field: 'body.cronExpression',
      value: () => ({ cronExpression: '0 9 * * 1#2' }),
    },
    {
      name: 'a cron with 4 fields',
      operation: 'POST /api/tasks/preview-schedule',
      in: 'body',
      field: 'body.cronExpression',
      value: () => ({ cronExpression: '0 9 * *' }),
    },
    {
      name: 'an install naming the tool twice',
      operation: 'POST /api/tools/server/{serverId}/install',
      in: 'body',
      field: 'body.toolId',
      value: () => ({ toolId: fx.toolId, name: 'git' }),
    },
    {
      name: 'an install naming no tool',
      operation: 'POST /api/tools/server/{serverId}/install',
      in: 'body',
      field: 'body.toolId',
      value: () => ({}),
    },
    {
      name: 'an answer field name over 200 characters',
      operation: 'POST /api/executions/{id}/input',
      in: 'body',
      field: `body.content.${'k'.repeat(201)}`,
      value: () => ({ action: 'accept', content: { ['k'.repeat(201)]: 'x' } }),
    },
    {
      name: 'content with a decline',
      operation: 'POST /api/executions/{id}/input',
      in: 'body',
      field: 'body.content',
      value: () => ({ action: 'decline', content: { answer: 'x' } }),
    },
    {
      name: 'a MASTER with a supervisor',
      operation: 'POST /api/agents',
      in: 'body',
      field: 'body.supervisorId',
      value: () => ({ serverId: fx.serverId, name: `master-${randomUUID().slice(0, 8)}`, role: 'MASTER', supervisorId: fx.agentId }),
    },
    {
      name: 'an unknown field',
      operation: 'POST /api/agents',
      in: 'body',
      field: 'body',
      value: () => ({ serverId: fx.serverId, name: 'unknown-field', colour: 'blue' }),
    },
  ];

  /** Concrete values for a path's parameters: the fixtures' ids where the route loads one. */
  function concretePath(path: string, params: Record<string, unknown> = {}): string {
    const ids: Record<string, string> = { id: params.id as string, agentId: fx.agentId, serverId: fx.serverId };
    return path.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(String(params[name] ?? ids[name] ?? nobody())));
  }
  const idFor: Record<string, () => Promise<string>> = {
    'PUT /api/tasks/{id}': async () => (await newTask()).id,
    'PUT /api/servers/{id}': async () => fx.serverId,
    'PUT /api/agents/{id}': async () => fx.agentId,
    'PATCH /api/users/{id}': async () => (await newUser()).id,
    'PUT /api/tools/{id}': async () => (await newTool()).id,
    'POST /api/agents/{id}/execute': async () => fx.agentId,
    'POST /api/executions/{id}/input': async () => fx.finishedRunId,
  };

  it.each(CONSTRAINTS.map((c) => [c.name, c] as const))('says what it enforces: %s', async (_, constraint) => {
    const [method, path] = constraint.operation.split(' ') as [string, string];
    const operation = spec.paths[path]![method.toLowerCase()]!;
    const value = constraint.value();
    const id = idFor[constraint.operation] ? await idFor[constraint.operation]!() : undefined;
    const url = concretePath(path, constraint.in === 'path' ? value : { id });
    const call = http[method.toLowerCase() as (typeof METHODS)[number]](url).set(as());
    const res =
      constraint.in === 'query'
        ? await call.query(value as Record<string, string>)
        : constraint.in === 'body'
          ? await call.send(value)
          : await call;
    expect(res.status).toBe(400);
    conforms(constraint.operation, res);
    expect((res.body.error.details as { path: string }[]).map((d) => d.path)).toContain(constraint.field);

    if (constraint.in === 'body') {
      const validate = validatorFor(`${constraint.operation} request`, operation.requestBody!.content['application/json']!.schema);
      expect(validate(value)).toBe(false);
    } else {
      const [name, raw] = Object.entries(value)[0]!;
      const parameter = operation.parameters!.find((p) => p.name === name && p.in === constraint.in)!;
      expect(validatorFor(`${constraint.operation} ${constraint.in} ${name}`, parameter.schema)(raw)).toBe(false);
    }
  });

  it("writes the rule of every request string into the document: each has a pattern, a format or an enum that refuses NUL, and every free-form object's keys too", () => {
    const unruled: string[] = [];
    const seen = new Set<unknown>();
    const visit = (node: unknown, at: string): void => {
      if (!node || typeof node !== 'object' || seen.has(node)) return;
      seen.add(node);
      const schema = node as Record<string, unknown>;
      if (typeof schema.$ref === 'string')
        return visit((spec.components.schemas as Record<string, unknown>)[schema.$ref.split('/').pop()!], schema.$ref);
      const types = [schema.type].flat();
      if (types.includes('string') && !schema.enum && schema.const === undefined) {
        const pattern = typeof schema.pattern === 'string' ? new RegExp(schema.pattern, 'u') : undefined;
        if (
          !(pattern && !pattern.test('\u0000') && !pattern.test('a\u0000')) &&
          !['uuid', 'email', 'date-time', 'uri'].includes(String(schema.format))
        )
          unruled.push(at);
      }
      if (
        types.includes('object') &&
        schema.additionalProperties !== false &&
        schema.additionalProperties !== undefined &&
        !(schema.propertyNames as { pattern?: string } | undefined)?.pattern
      )
        unruled.push(`${at} (keys)`);
      for (const [key, child] of Object.entries(schema)) {
        if (key === 'properties') for (const [name, property] of Object.entries(child as object)) visit(property, `${at}.${name}`);
        else if (['items', 'additionalProperties', 'allOf', 'anyOf', 'oneOf'].includes(key))
          [child].flat().forEach((c) => visit(c, `${at}.${key}`));
      }
    };
    for (const [path, item] of Object.entries(spec.paths)) {
      for (const method of METHODS.filter((m) => item[m])) {
        const operation = item[method]!;
        for (const parameter of operation.parameters ?? [])
          visit(parameter.schema, `${method.toUpperCase()} ${path} ${parameter.in}.${parameter.name}`);
        const body = operation.requestBody?.content['application/json']?.schema;
        if (body) visit(body, `${method.toUpperCase()} ${path} body`);
      }
    }
    expect(unruled).toEqual([]);
  });

  it('tells every client the rules that hold for every request', () => {
    const info = (spec as unknown as { info: { description: string } }).info.description;
    expect(info).toMatch(/NUL/);
    expect(info).toMatch(/32 levels/);
  });
});
