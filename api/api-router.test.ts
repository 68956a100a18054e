import { RequestContext } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import Koa from 'koa';
import request from 'supertest';
import { httpFor, randomIp, registerAccount } from '../test/api';
import { createTestContext, type TestContext } from '../test/harness';
import { ApiRouter } from './api-router';
import { authenticate } from './auth/authenticate';
import type { AppContext } from './context';
import { errorHandler } from './middleware/error-handler';
import { jsonBody } from './middleware/json-body';
import { requestLogger } from './middleware/request-logger';
import { createRegistry } from './openapi';
import { IdParams } from './routes/common.schemas';

describe('ApiRouter: what a handler gets', () => {
  let ctx: TestContext;
  let http: ReturnType<typeof request>;
  const seen: { em: EntityManager; fork: unknown }[] = [];
  let calls = 0;

  beforeAll(async () => {
    ctx = await createTestContext();
    const api = new ApiRouter(createRegistry(), ctx.orm);
    const spec = { method: 'get' as const, summary: 'probe', tags: ['probe'], responses: { 200: { description: 'ok' } } };
    api.route({ ...spec, path: '/probe/caller/:id', request: { params: IdParams } }, (koa, { params, em, auth, actor }) => {
      calls++;
      seen.push({ em, fork: RequestContext.getEntityManager() });
      koa.body = { id: params.id, userId: auth.userId, organizationId: auth.organizationId, role: auth.role, actor };
    });
    api.publicRoute({ ...spec, path: '/probe/public' }, (koa, request) => {
      // @ts-expect-error a public handler has no caller to read
      void request.auth;
      // @ts-expect-error nor does a handler read the caller from Koa's state
      void koa.state.auth;
      seen.push({ em: request.em, fork: RequestContext.getEntityManager() });
      koa.body = { keys: Object.keys(request).sort() };
    });
    // The middleware of createApp, in its order, around the probe routes.
    const app = new Koa<AppContext['state'], AppContext>({ proxy: true });
    app.silent = true;
    app.use(requestLogger(ctx.logger));
    app.use(errorHandler());
    app.use(jsonBody(ctx.config.http.bodyLimit));
    app.use((_koa, next) => RequestContext.create(ctx.orm.em, next));
    for (const step of authenticate(ctx)) app.use(step);
    app.use(api.router.routes());
    http = request(app.callback());
  });
  afterAll(() => ctx.close());

  it('gives an authenticated handler its caller, the actor commands take, and the request’s own EntityManager fork', async () => {
    const account = await registerAccount(httpFor(ctx));
    const ip = randomIp();
    const id = '00000000-0000-4000-8000-000000000001';
    const res = await http
      .get(`/api/probe/caller/${id}`)
      .set('X-Forwarded-For', ip)
      .set('X-Request-Id', 'probe-1')
      .auth(account.accessToken, { type: 'bearer' })
      .expect(200);
    expect(res.body).toEqual({
      id,
      userId: account.userId,
      organizationId: account.organizationId,
      role: 'ADMIN',
      actor: { userId: account.userId, organizationId: account.organizationId, email: account.email, ip, requestId: 'probe-1', via: 'api' },
    });
    await http.get(`/api/probe/caller/${id}`).auth(account.accessToken, { type: 'bearer' }).expect(200);
    expect(seen).toHaveLength(2);
    const [first, second] = seen.splice(0);
    expect(first.em).toBe(first.fork);
    expect(first.em).not.toBe(ctx.orm.em);
    expect(second.em).not.toBe(first.em);
  });

  it('answers 401 before validation and never calls an authenticated handler without a caller', async () => {
    const before = calls;
    const res = await http.get('/api/probe/caller/not-a-uuid').expect(401);
    expect(res.body.error.code).toBe('unauthorized');
    expect(calls).toBe(before);
  });

  it('gives a public handler the request’s fork and no caller, even when a valid token comes', async () => {
    const account = await registerAccount(httpFor(ctx));
    const res = await http.get('/api/probe/public').auth(account.accessToken, { type: 'bearer' }).expect(200);
    expect(res.body.keys).toEqual(['em']);
    expect(seen).toHaveLength(1);
    const [only] = seen.splice(0);
    expect(only.em).toBe(only.fork);
  });
});
