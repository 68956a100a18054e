import { ForbiddenError, subject } from '@casl/ability';
import { ApiKey } from '../../../entities';
import { AppError } from '../../../domain/errors';
import { createApiKey, revokeApiKey } from '../../../domain/api-keys/api-key-commands';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { scopedPage } from '../../list';
import { loadApiKey } from '../../loaders';
import { rateLimit } from '../../rate-limit';
import { IdParams } from '../common.schemas';
import { presentApiKey } from './api-keys.presenters';
import { ApiKeyPage, ApiKeyWithSecretOut, CreateApiKeyBody, ListApiKeysQuery } from './api-keys.schemas';

export function apiKeyRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['api-keys'];

  api.route(
    {
      method: 'post',
      path: '/api-keys',
      summary:
        'Create an API key for yourself (any role; its role at most yours); the answer holds the key, the only time it is shown (docs/auth.md#api-keys)',
      tags,
      request: { body: CreateApiKeyBody },
      responses: {
        201: { description: 'Created, with `key`', schema: ApiKeyWithSecretOut },
        403: { description: '`role_too_high`: a role above yours; `api_key_not_allowed`: a key cannot create keys' },
      },
      before: [rateLimit(deps, 'api-key')],
    },
    async (ctx, { body, em, auth, actor }) => {
      // A key minting keys would let a stolen or expiring key outlive its revocation or expiry.
      if (auth.apiKey) throw new AppError(403, 'api_key_not_allowed', 'API keys are created after a login, not with an API key');
      ForbiddenError.from(auth.ability).throwUnlessCan(
        'create',
        subject('ApiKey', { organization: { id: auth.organizationId }, owner: { id: auth.userId } } as unknown as ApiKey),
      );
      const { apiKey, token } = await createApiKey(em, deps.config, actor, auth.role, {
        name: body.name,
        role: body.role as ApiKey['role'] | undefined,
        expiresAt: body.expiresAt ? new Date(body.expiresAt) : undefined,
      });
      await em.populate(apiKey, ['owner']);
      ctx.status = 201;
      ctx.set('Cache-Control', 'no-store');
      ctx.body = { ...presentApiKey(apiKey), key: token };
    },
  );

  api.route(
    {
      method: 'get',
      path: '/api-keys',
      summary: 'Your API keys, newest first; an ADMIN sees every key of the organisation. Never the keys themselves',
      tags,
      request: { query: ListApiKeysQuery },
      responses: { 200: { description: 'A page of keys', schema: ApiKeyPage } },
    },
    async (ctx, { query, em, auth }) => {
      ctx.body = await scopedPage(em, ApiKey, auth, 'ApiKey', query, [], presentApiKey, ['owner']);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/api-keys/:id',
      summary:
        'Revoke an API key (its owner, or an ADMIN): refused from now on, on every API instance; the sockets and SSE streams opened with it are closed',
      tags,
      request: { params: IdParams },
      responses: { 204: { description: 'Revoked (also when it already was)' } },
      before: [rateLimit(deps, 'api-key')],
    },
    async (ctx, { params, em, auth, actor }) => {
      await em.transactional(async (tx) => {
        const apiKey = await loadApiKey(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', apiKey);
        await revokeApiKey(tx, actor, apiKey);
      });
      ctx.status = 204;
    },
  );
}
