import { AppError } from '../../../domain/errors';
import { User } from '../../../entities';
import type { ApiRouter } from '../../api-router';
import { packAbility } from '../../auth/abilities';
import { login, logout, refresh, register, type AuthResult } from '../../auth/auth.service';
import { requestMeta } from '../../actor';
import type { HandlerContext } from '../../context';
import type { AppDeps } from '../../deps';
import { presentUser } from '../users/users.presenters';
import { presentAuthResult, presentOrganization } from './auth.presenters';
import { AuthResponse, LoginBody, MeResponse, RefreshBody, RegisterBody } from './auth.schemas';
import { rateLimit } from '../../rate-limit';

/** Answers with a token pair, which browsers and proxies must not cache. */
function sendTokens(ctx: HandlerContext, result: AuthResult, status = 200): void {
  ctx.set('Cache-Control', 'no-store');
  ctx.status = status;
  ctx.body = presentAuthResult(result);
}

export function authRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['auth'];
  api.publicRoute(
    {
      method: 'post',
      path: '/auth/register',
      summary: 'Create an account and its organisation (the registrant becomes its ADMIN)',
      tags,
      request: { body: RegisterBody },
      before: [rateLimit(deps, 'register')],
      responses: { 201: { description: 'Registered and logged in', schema: AuthResponse }, 409: { description: 'email_taken' } },
    },
    async (ctx, { body, em }) => {
      sendTokens(ctx, await register(em, deps.config, body, requestMeta(ctx)), 201);
    },
  );

  api.publicRoute(
    {
      method: 'post',
      path: '/auth/login',
      summary: 'Log in with email and password',
      tags,
      request: { body: LoginBody },
      responses: {
        200: { description: 'Logged in', schema: AuthResponse },
        401: { description: 'invalid_credentials (same answer for a wrong email or a wrong password)' },
        429: {
          description:
            'too_many_attempts: within 15 minutes, 5 failures for this email from this IP, 20 from this IP, or 100 for this email; see Retry-After',
        },
      },
    },
    async (ctx, { body, em }) => {
      const result = await login(em, deps.config, body, requestMeta(ctx)).catch((error: unknown) => {
        if (error instanceof AppError && error.code === 'invalid_credentials') deps.metrics.loginFailures.inc();
        throw error;
      });
      sendTokens(ctx, result);
    },
  );

  api.publicRoute(
    {
      method: 'post',
      path: '/auth/refresh',
      summary: 'Trade a refresh token for a new pair; the old one is spent',
      tags,
      request: { body: RefreshBody },
      before: [rateLimit(deps, 'refresh')],
      responses: {
        200: { description: 'A new access and refresh token', schema: AuthResponse },
        401: { description: 'invalid_refresh_token, refresh_expired, session_revoked, or refresh_reused (the whole login is revoked)' },
      },
    },
    async (ctx, { body, em }) => {
      sendTokens(ctx, await refresh(em, deps.config, body.refreshToken, requestMeta(ctx)));
    },
  );

  api.publicRoute(
    {
      method: 'post',
      path: '/auth/logout',
      summary: 'End the login of this refresh token; its access tokens are refused at once',
      tags,
      request: { body: RefreshBody },
      before: [rateLimit(deps, 'logout')],
      responses: { 204: { description: 'Logged out (also when the token was unknown)' } },
    },
    async (ctx, { body, em }) => {
      await logout(em, deps.config, body.refreshToken, requestMeta(ctx));
      ctx.status = 204;
    },
  );

  api.route(
    {
      method: 'get',
      path: '/auth/me',
      summary: 'The caller, their organisation and their packed CASL rules',
      tags,
      responses: { 200: { description: 'The caller', schema: MeResponse } },
    },
    async (ctx, { em, auth }) => {
      const user = await em.findOneOrFail(User, { id: auth.userId, organization: auth.organizationId }, { populate: ['organization'] });
      ctx.body = { user: presentUser(user), organization: presentOrganization(user.organization), rules: packAbility(auth.ability) };
    },
  );
}
