import { ForbiddenError, subject } from '@casl/ability';
import { Organization, Webhook } from '../../../entities';
import { createWebhook, deleteWebhook, rotateWebhookSecret, updateWebhook } from '../../../domain/webhooks/webhook-commands';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { scopedPage } from '../../list';
import { loadWebhook } from '../../loaders';
import { IdParams } from '../common.schemas';
import { presentWebhook } from './webhooks.presenters';
import { CreateWebhookBody, ListWebhooksQuery, UpdateWebhookBody, WebhookOut, WebhookPage, WebhookWithSecretOut } from './webhooks.schemas';

export function webhookRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['webhooks'];

  api.route(
    {
      method: 'get',
      path: '/webhooks',
      summary: "List the organisation's webhook endpoints (ADMIN, MANAGER)",
      tags,
      request: { query: ListWebhooksQuery },
      responses: { 200: { description: 'A page of endpoints', schema: WebhookPage } },
    },
    async (ctx, { query, em, auth }) => {
      // Not an empty page for the others: where the organisation's alerts go is not theirs to see.
      ForbiddenError.from(auth.ability).throwUnlessCan('read', 'Webhook');
      ctx.body = await scopedPage(em, Webhook, auth, 'Webhook', query, [], presentWebhook);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/webhooks/:id',
      summary: 'One webhook endpoint (ADMIN, MANAGER)',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The endpoint', schema: WebhookOut } },
    },
    async (ctx, { params, em, auth }) => {
      const webhook = await loadWebhook(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', webhook);
      ctx.body = presentWebhook(webhook);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/webhooks',
      summary:
        'Register a webhook endpoint (ADMIN, MANAGER); the answer holds its signing secret, the only time it is shown (docs/webhooks.md)',
      tags,
      request: { body: CreateWebhookBody },
      responses: { 201: { description: 'Registered, with `secret`', schema: WebhookWithSecretOut } },
    },
    async (ctx, { body, em, auth, actor }) => {
      const organization = em.getReference(Organization, auth.organizationId);
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('Webhook', { organization } as unknown as Webhook));
      const { webhook, secret } = await createWebhook(em, deps.config, actor, body);
      ctx.status = 201;
      ctx.body = { ...presentWebhook(webhook), secret };
    },
  );

  api.route(
    {
      method: 'put',
      path: '/webhooks/:id',
      summary: 'Change a webhook endpoint (ADMIN, MANAGER); `enabled: true` turns on an endpoint the fleet had disabled',
      tags,
      request: { params: IdParams, body: UpdateWebhookBody },
      responses: { 200: { description: 'Updated', schema: WebhookOut } },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const updated = await em.transactional(async (tx) => {
        const webhook = await loadWebhook(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', webhook);
        await updateWebhook(tx, deps.config, actor, webhook, body);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', webhook);
        return webhook;
      });
      ctx.body = presentWebhook(updated);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/webhooks/:id',
      summary: 'Remove a webhook endpoint (ADMIN, MANAGER)',
      tags,
      request: { params: IdParams },
      responses: { 204: { description: 'Deleted' } },
    },
    async (ctx, { params, em, auth, actor }) => {
      await em.transactional(async (tx) => {
        const webhook = await loadWebhook(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', webhook);
        await deleteWebhook(tx, actor, webhook);
      });
      ctx.status = 204;
    },
  );

  api.route(
    {
      method: 'post',
      path: '/webhooks/:id/rotate-secret',
      summary:
        'A new signing secret, shown in this answer only (ADMIN, MANAGER); the one it replaces keeps signing beside it for 24 h, so messages carry both signatures meanwhile',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The endpoint with its new `secret`', schema: WebhookWithSecretOut } },
    },
    async (ctx, { params, em, auth, actor }) => {
      const rotated = await em.transactional(async (tx) => {
        const webhook = await loadWebhook(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', webhook);
        return rotateWebhookSecret(tx, deps.config, actor, webhook);
      });
      ctx.body = { ...presentWebhook(rotated.webhook), secret: rotated.secret };
    },
  );
}
