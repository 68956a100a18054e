import { Writable } from 'node:stream';
import Koa from 'koa';
import { Connection } from '@temporalio/client';
import request from 'supertest';
import { createTestContext, type TestContext } from '../test/harness';
import { createApp } from './app';
import { AppError } from '../domain/errors';
import { errorHandler } from './middleware/error-handler';
import { createTemporalClient } from '../lib/temporal';
import { freePort } from '../dev/free-port';
import { createLogger } from '../lib/logger';

describe('API skeleton', () => {
  let ctx: TestContext;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = request(createApp(ctx).callback());
  });
  afterAll(() => ctx.close());

  it('GET /api/health answers 200 when PostgreSQL and Temporal both answer', async () => {
    const res = await http.get('/api/health').expect(200);
    expect(res.body).toEqual({ status: 'ok', db: 'ok', temporal: 'ok' });
  });

  it('GET /api/health answers 503 naming Temporal when it is unreachable', async () => {
    const deadPort = await freePort();
    // No retry interceptor: its timers would outlive the closed channel.
    const connection = Connection.lazy({ address: `127.0.0.1:${deadPort}`, connectTimeout: '500ms', interceptors: [] });
    const app = createApp({
      ...ctx,
      temporal: { connection, client: createTemporalClient(connection, ctx.config), taskQueue: ctx.config.temporal.taskQueue },
    });
    const res = await request(app.callback()).get('/api/health').expect(503);
    expect(res.body).toMatchObject({ status: 'error', db: 'ok', temporal: 'error', errors: { temporal: expect.any(String) } });
    expect(res.body.errors).not.toHaveProperty('db');
    await connection.close();
  });

  it('gives every response a request id, echoing a sane incoming one', async () => {
    const own = await http.get('/api/health').set('X-Request-Id', 'abc-123').expect(200);
    expect(own.headers['x-request-id']).toBe('abc-123');
    const generated = await http.get('/api/health').set('X-Request-Id', 'bad id with spaces').expect(200);
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs each request with the status the client got, failures included', async () => {
    let out = '';
    const sink = new Writable({ write: (chunk, _enc, done) => ((out += chunk.toString()), done()) });
    const logged = request(
      createApp({ ...ctx, logger: createLogger({ log: { level: 'info', pretty: false } }, 'app-test', sink) }).callback(),
    );
    const sent = [
      await logged.get('/api/health').set('X-Request-Id', 'log-ok'),
      await logged.post('/api/auth/login').set('X-Request-Id', 'log-invalid-json').set('Content-Type', 'application/json').send('{"a":'),
      await logged.post('/api/auth/login').set('X-Request-Id', 'log-invalid-body').send({ email: 'not an email' }),
      await logged.get('/api/auth/me').set('X-Request-Id', 'log-no-token'),
      await logged.get('/api/does-not-exist').set('X-Request-Id', 'log-no-route'),
      await logged.delete('/api/health').set('X-Request-Id', 'log-wrong-method'),
    ];
    expect(sent.map((res) => res.status)).toEqual([200, 400, 400, 401, 404, 405]);
    const lines = out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { msg: string; requestId: string; status: number; level: number })
      .filter((line) => line.msg === 'request');
    for (const res of sent) {
      const line = lines.find((l) => l.requestId === res.headers['x-request-id']);
      expect({ requestId: line?.requestId, status: line?.status }).toEqual({ requestId: res.headers['x-request-id'], status: res.status });
      // pino levels: 30 info, 40 warn.
      expect(line?.level).toBe(res.status >= 400 ? 40 : 30);
    }
  });

  it('answers unknown routes with 404 in the error shape', async () => {
    const res = await http.get('/api/does-not-exist').expect(404);
    expect(res.body).toEqual({ error: { code: 'not_found', message: 'No route for GET /api/does-not-exist' } });
  });

  it('answers a wrong method on a known route with 405', async () => {
    const res = await http.delete('/api/health').expect(405);
    expect(res.body.error.code).toBe('method_not_allowed');
  });

  it('answers malformed JSON with 400 invalid_json', async () => {
    const res = await http.post('/api/health').set('Content-Type', 'application/json').send('{"a":').expect(400);
    expect(res.body).toEqual({ error: { code: 'invalid_json', message: 'The request body is not valid JSON' } });
  });

  it('answers an oversized body with 413', async () => {
    const huge = JSON.stringify({ prompt: 'x'.repeat(2 * 1024 * 1024) });
    const res = await http.post('/api/health').set('Content-Type', 'application/json').send(huge).expect(413);
    expect(res.body.error.code).toBe('payload_too_large');
  });

  it('publishes OpenAPI 3.1 generated from the route schemas, and interactive docs', async () => {
    const doc = await http.get('/api/openapi.json').expect(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(doc.body.paths['/api/health'].get.responses['200'].content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/Health',
    });
    expect(doc.body.components.schemas.Error).toBeDefined();
    const page = await http.get('/docs').expect(200);
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.text).toContain('/api/openapi.json');
    await http
      .get('/docs/swagger-ui-bundle.js')
      .expect(200)
      .expect('Content-Type', /javascript/);
    await http.get('/docs/..%2Fpackage.json').expect(404);
  });
});

/** The operations that reach Temporal in a way a client sees: a start, a signal, a cancel, a wait, a schedule change. */
const TEMPORAL_OPERATIONS = [
  'POST /api/agents/{id}/validate',
  'POST /api/agents/{id}/execute',
  'POST /api/executions/{id}/cancel',
  'POST /api/master/execute',
  'POST /api/master/create-agent',
  'POST /api/servers/{id}/test',
  'POST /api/servers/{id}/health',
  'POST /api/tasks',
  'PUT /api/tasks/{id}',
  'POST /api/tasks/{id}/pause',
  'POST /api/tasks/{id}/resume',
  'DELETE /api/tasks/{id}',
  'POST /api/tasks/{id}/run',
  'POST /api/tasks/{id}/cancel',
  'POST /api/tools/server/{serverId}/install',
  'DELETE /api/tools/server/{serverId}/{toolId}',
  'POST /api/tools/server/{serverId}/{toolId}/cancel',
].sort();

describe('the 503s in the OpenAPI document', () => {
  type Response503 = {
    description: string;
    headers?: Record<string, { required?: boolean; schema?: { type?: string } }>;
    content?: Record<string, { schema: { $ref?: string } }>;
  };
  type Doc = {
    paths: Record<string, Record<string, { responses: Record<string, Response503>; security?: unknown[] }>>;
    components: { schemas: Record<string, { properties: { error: { properties: { code: { enum?: string[]; const?: string } } } } }> };
  };
  let ctx: TestContext;
  let doc: Doc;

  beforeAll(async () => {
    ctx = await createTestContext();
    doc = (await request(createApp(ctx).callback()).get('/api/openapi.json').expect(200)).body as Doc;
  });
  afterAll(() => ctx.close());

  /** The error codes a 503 of the document may carry, read through its schema. */
  const codesOf = (response: Response503): string[] => {
    const ref = response.content?.['application/json']?.schema.$ref ?? '';
    const code = doc.components.schemas[ref.split('/').pop()!]?.properties.error.properties.code;
    return code?.enum ?? (code?.const ? [code.const] : []);
  };

  it('lists database_unavailable with Retry-After on every operation, and temporal_unavailable on exactly those that reach Temporal', () => {
    const operations = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, operation })),
    );
    expect(operations.length).toBeGreaterThan(50);
    const withTemporal: string[] = [];
    for (const { name, operation } of operations) {
      const unavailable = operation.responses['503'];
      // The health check answers its own body, naming the failing part.
      if (name === 'GET /api/health') {
        expect(unavailable?.content?.['application/json']?.schema.$ref).toBe('#/components/schemas/Health');
        continue;
      }
      expect({ name, documented: !!unavailable }).toEqual({ name, documented: true });
      expect({ name, retryAfter: unavailable!.headers?.['Retry-After'] }).toMatchObject({
        name,
        retryAfter: { required: true, schema: { type: 'integer' } },
      });
      const codes = codesOf(unavailable!);
      expect({ name, codes }).toEqual({ name, codes: expect.arrayContaining(['database_unavailable']) });
      expect(unavailable!.description).toContain('database_unavailable');
      if (codes.includes('temporal_unavailable')) {
        withTemporal.push(name);
        // What the refusal leaves behind is said.
        expect(unavailable!.description).toMatch(/`temporal_unavailable`: Temporal could not be reached or did not answer in time; \S/);
      }
    }
    expect(withTemporal.sort()).toEqual(TEMPORAL_OPERATIONS);
  });
});

describe('error middleware', () => {
  function appThrowing(error: unknown) {
    const app = new Koa();
    app.silent = true;
    app.use(errorHandler() as Koa.Middleware);
    app.use(() => {
      throw error;
    });
    return request(app.callback());
  }

  it('turns an unexpected error into 500 internal without stack, message or SQL', async () => {
    const res = await appThrowing(new Error('select * from users where password_hash = $1')).get('/').expect(500);
    expect(res.body).toEqual({ error: { code: 'internal', message: 'Internal server error' } });
    expect(res.text).not.toMatch(/select|stack|at /i);
  });

  it('passes AppError code, message, details and headers through', async () => {
    const res = await appThrowing(new AppError(429, 'too_many_attempts', 'Try later', { retryAfter: 60 }, { 'Retry-After': '60' }))
      .get('/')
      .expect(429);
    expect(res.body).toEqual({ error: { code: 'too_many_attempts', message: 'Try later', details: { retryAfter: 60 } } });
    expect(res.headers['retry-after']).toBe('60');
  });
});
