import { randomBytes, randomUUID } from 'node:crypto';
import request from 'supertest';
import { createApp } from '../api/app';
import type { TestContext } from './harness';

export type Http = ReturnType<typeof request>;

export const PASSWORD = 'correct horse battery staple';

/** The app as a client sees it, trusting X-Forwarded-For so each test can be its own client IP. */
export function httpFor(ctx: TestContext): Http {
  return request(createApp({ ...ctx, config: { ...ctx.config, http: { ...ctx.config.http, trustProxy: true } } }).callback());
}

export function randomIp(): string {
  const b = randomBytes(3);
  return `10.${b[0]}.${b[1]}.${b[2]}`;
}

export function uniqueEmail(prefix = 'user'): string {
  return `${prefix}-${randomUUID().slice(0, 12)}@example.test`;
}

export interface Account {
  email: string;
  userId: string;
  organizationId: string;
  accessToken: string;
  refreshToken: string;
}

export async function registerAccount(http: Http, organizationName = 'Acme Corp'): Promise<Account> {
  const email = uniqueEmail('admin');
  const res = await http
    .post('/api/auth/register')
    .set('X-Forwarded-For', randomIp())
    .send({ email, password: PASSWORD, name: 'Ada Admin', organizationName })
    .expect(201);
  return {
    email,
    userId: res.body.user.id,
    organizationId: res.body.organization.id,
    accessToken: res.body.accessToken,
    refreshToken: res.body.refreshToken,
  };
}

/** An ADMIN adds a member with `role`, who then logs in. */
export async function addMember(http: Http, admin: Account, role: string): Promise<Account> {
  const email = uniqueEmail(role.toLowerCase());
  const created = await http
    .post('/api/users')
    .auth(admin.accessToken, { type: 'bearer' })
    .send({ email, name: `${role} member`, role, password: PASSWORD })
    .expect(201);
  const res = await http.post('/api/auth/login').set('X-Forwarded-For', randomIp()).send({ email, password: PASSWORD }).expect(200);
  return {
    email,
    userId: created.body.id,
    organizationId: admin.organizationId,
    accessToken: res.body.accessToken,
    refreshToken: res.body.refreshToken,
  };
}
