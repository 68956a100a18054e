import { gzipSync } from 'node:zlib';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentStatus, Organization } from '../entities';
import { httpFor, PASSWORD, randomIp, registerAccount, uniqueEmail, type Account, type Http } from '../test/api';
import { makeAgent, makeServer } from '../test/factories';
import { createTestContext, type TestContext } from '../test/harness';
import { createApp } from './app';

/** Inputs that once reached PostgreSQL or the body parser unchecked and came back as 500s. */
describe('malformed input is a 4xx naming the field, never a 500', () => {
  let ctx: TestContext;
  let api: Http;
  let admin: Account;
  let serverId: string;
  let agentId: string;
  const auth = () => ({ Authorization: `Bearer ${admin.accessToken}` });

  beforeAll(async () => {
    ctx = await createTestContext();
    api = httpFor(ctx);
    admin = await registerAccount(api, 'Malformed Org');
    const em = ctx.orm.em.fork();
    const organization = em.getReference(Organization, admin.organizationId);
    const server = makeServer(em, organization);
    const agent = makeAgent(em, server);
    agent.status = AgentStatus.ACTIVE;
    agent.maxConcurrency = 50;
    await em.flush();

    serverId = server.id;
    agentId = agent.id;
  });
  afterAll(() => ctx?.close());

  function expectFieldError(
    res: { status: number; body: { error?: { code: string; details?: Array<{ path: string }> } } },
    status: number,
    path: string,
  ) {
    expect({ status: res.status, code: res.body.error?.code }).toEqual({ status, code: expect.any(String) });
    expect(res.body.error?.details?.map((d) => d.path)).toContain(path);
  }

  describe('methods', () => {
    it('answers an unsupported method on a known path with 405 and Allow', async () => {
      for (const method of ['TRACE', 'PROPFIND']) {
        const res = await api[method === 'TRACE' ? 'trace' : ('propfind' as 'get')]('/api/health');
        expect(res.status).toBe(405);
        expect(res.body).toEqual({ error: { code: 'method_not_allowed', message: expect.stringContaining('GET') } });
        expect(res.headers.allow).toBe('GET, HEAD, OPTIONS');
      }
      const user = await api.trace(`/api/users/${admin.userId}`).set(auth()).expect(405);
      expect(user.headers.allow).toBe('DELETE, GET, HEAD, OPTIONS, PATCH');
      const wrong = await api.delete('/api/health').expect(405);
      expect(wrong.headers.allow).toBe('GET, HEAD, OPTIONS');
    });

    it('answers OPTIONS with 204 and Allow', async () => {
      const res = await api.options('/api/agents').expect(204);
      expect(res.headers.allow).toBe('GET, HEAD, OPTIONS, POST');
    });

    it('answers any method on an unknown path with 404', async () => {
      for (const res of [await api.trace('/api/nope'), await api.options('/api/nope'), await api.get('/api/nope')]) {
        expect(res.status).toBe(404);
        expect(res.body.error.code).toBe('not_found');
      }
    });
  });

  describe('text PostgreSQL cannot store', () => {
    const NUL = 'a\u0000b';

    it.each([
      ['/api/users', 'q'],
      ['/api/agents', 'q'],
      ['/api/servers', 'name'],
      ['/api/audit', 'action'],
      ['/api/audit', 'resourceType'],
      ['/api/audit', 'resourceId'],
    ])('rejects NUL in %s?%s', async (path, field) => {
      const res = await api
        .get(path)
        .query({ [field]: NUL })
        .set(auth());
      expectFieldError(res, 400, `query.${field}`);
    });

    it('rejects NUL in register name and organizationName', async () => {
      const res = await api
        .post('/api/auth/register')
        .set('X-Forwarded-For', randomIp())
        .send({ email: uniqueEmail(), password: PASSWORD, name: NUL, organizationName: NUL });
      expectFieldError(res, 400, 'body.name');
      expectFieldError(res, 400, 'body.organizationName');
    });

    it('rejects NUL in an agent description', async () => {
      const res = await api.post('/api/agents').set(auth()).send({ serverId, name: 'nul-agent', description: NUL });
      expectFieldError(res, 400, 'body.description');
    });

    it('rejects NUL in a prompt, a context value and a context key', async () => {
      const prompt = await api.post(`/api/agents/${agentId}/execute`).set(auth()).send({ prompt: NUL });
      expectFieldError(prompt, 400, 'body.prompt');
      const value = await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .send({ prompt: 'hi', context: { list: ['ok', NUL] } });
      expectFieldError(value, 400, 'body.context.list.1');
      const key = await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .send({ prompt: 'hi', context: { [NUL]: 1 } });
      expectFieldError(key, 400, 'body.context.a\\u0000b');
    });

    it('rejects lone surrogates in context keys and values', async () => {
      // Written by hand: JSON.stringify would escape them the same way, but be explicit.
      const key = await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .set('Content-Type', 'application/json')
        .send('{"prompt":"hi","context":{"\\ud800":1}}');
      expectFieldError(key, 400, 'body.context.\\ud800');
      const value = await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .set('Content-Type', 'application/json')
        .send('{"prompt":"hi","context":{"k":"x\\udc00"}}');
      expectFieldError(value, 400, 'body.context.k');
      // A proper pair is fine.
      await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .send({ prompt: 'hi 😀', context: { '😀': '😀' } })
        .expect(202);
    });
  });

  describe('deep nesting', () => {
    it('rejects a 5,000-level nested context with 400 at the first level too deep', async () => {
      const deep = `{"prompt":"hi","context":{"a":${'['.repeat(5000)}${']'.repeat(5000)}}}`;
      const res = await api.post(`/api/agents/${agentId}/execute`).set(auth()).set('Content-Type', 'application/json').send(deep);
      expect(res.status).toBe(400);
      expect(res.body.error.details[0]).toMatchObject({ code: 'too_deep', path: expect.stringMatching(/^body\.context\.a(\.0)+$/) });
    });

    it('accepts 32 levels', async () => {
      // body (1) → context (2) → 30 more levels = 32.
      let value: unknown = 'leaf';
      for (let i = 0; i < 30; i++) value = [value];
      await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .send({ prompt: 'hi', context: { a: value } })
        .expect(202);
      value = [value];
      const res = await api
        .post(`/api/agents/${agentId}/execute`)
        .set(auth())
        .send({ prompt: 'hi', context: { a: value } });
      expectFieldError(res, 400, `body.context.a${'.0'.repeat(30)}`);
    });
  });

  describe('dates and cursors PostgreSQL cannot store', () => {
    it.each([
      ['/api/audit', 'from', '0000-01-01T00:00:00Z'],
      ['/api/audit', 'to', '9999-12-31T23:59:59-23:59'],
      ['/api/executions', 'from', '0000-06-01T00:00:00+00:00'],
      ['/api/executions', 'to', '9999-12-31T23:59:59-12:00'],
    ])('rejects %s?%s=%s', async (path, field, value) => {
      const res = await api
        .get(path)
        .query({ [field]: value })
        .set(auth());
      expectFieldError(res, 400, `query.${field}`);
    });

    it('accepts the edges of the range', async () => {
      await api.get('/api/audit').query({ from: '0001-01-01T00:00:00Z', to: '9999-12-31T23:59:59.999Z' }).set(auth()).expect(200);
    });

    it('rejects a cursor whose time is out of range', async () => {
      for (const at of ['+275760-09-13T00:00:00.000Z', '0000-01-01T00:00:00.000Z']) {
        const cursor = Buffer.from(JSON.stringify([at, '00000000-0000-4000-8000-000000000000'])).toString('base64url');
        for (const path of ['/api/audit', '/api/executions', '/api/users', '/api/agents', '/api/servers']) {
          const res = await api.get(path).query({ cursor }).set(auth());
          expectFieldError(res, 400, 'query.cursor');
        }
      }
    });
  });

  describe('bodies', () => {
    it('answers a Content-Encoding body that does not decode with 400 naming the header', async () => {
      for (const encoding of ['gzip', 'deflate', 'br']) {
        const res = await api
          .post('/api/auth/login')
          .set('Content-Type', 'application/json')
          .set('Content-Encoding', encoding)
          .send('{"email":"a@b.c","password":"x"}');
        expect(res.status).toBe(400);
        expect(res.body.error).toMatchObject({
          code: 'invalid_body',
          details: [{ path: 'headers.content-encoding', code: 'invalid_encoding' }],
        });
      }
    });

    it('decodes a real gzip body', async () => {
      const res = await api
        .post('/api/auth/login')
        .set('X-Forwarded-For', randomIp())
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', 'gzip')
        // As bytes: supertest would otherwise JSON-encode the Buffer itself.
        .serialize((bytes: unknown) => bytes as string)
        .send(gzipSync(JSON.stringify({ email: admin.email, password: PASSWORD })));
      expect(res.status).toBe(200);
    });

    it('answers an unknown Content-Encoding with 415 naming the header', async () => {
      const res = await api.post('/api/auth/login').set('Content-Type', 'application/json').set('Content-Encoding', 'zstd-ish').send('{}');
      expect(res.status).toBe(415);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: 'headers.content-encoding' })]);
    });

    it('answers a chunked text/plain body with 415, as a sized one', async () => {
      const server = http.createServer(createApp(ctx).callback());
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = server.address() as AddressInfo;
        const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = http.request(
            { port, host: '127.0.0.1', method: 'POST', path: '/api/auth/login', headers: { 'Content-Type': 'text/plain' } },
            (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => resolve({ status: res.statusCode!, body }));
            },
          );
          req.on('error', reject);
          // Two writes without Content-Length: Node sends Transfer-Encoding: chunked.
          req.write('{"email":');
          req.end('"a@b.c","password":"x"}');
        });
        expect(answer.status).toBe(415);
        expect(JSON.parse(answer.body).error.code).toBe('unsupported_media_type');
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      await api.post('/api/auth/login').set('Content-Type', 'text/plain').send('{"email":"a@b.c"}').expect(415);
    });
  });
});
