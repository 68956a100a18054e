import { LockMode } from '@mikro-orm/core';
import { ForbiddenError, subject } from '@casl/ability';
import { Organization, Webhook, WebhookDelivery, WebhookDeliveryStatus } from '../../../entities';
import { AppError } from '../../../domain/errors';
import { recordTestEvent, redeliver, startWebhookDeliveries } from '../../../domain/webhooks/deliveries';
import { createWebhook, deleteWebhook, rotateWebhookSecret, updateWebhook } from '../../../domain/webhooks/webhook-commands';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { scopedPage } from '../../list';
import { loadWebhook } from '../../loaders';
import { IdParams } from '../common.schemas';
import { presentDelivery, presentWebhook } from './webhooks.presenters';
import {
  CreateWebhookBody,
  DeliveryOut,
  DeliveryPage,
  DeliveryParams,
  ListDeliveriesQuery,
  ListWebhooksQuery,
  UpdateWebhookBody,
  WebhookOut,
  WebhookPage,
  WebhookWithSecretOut,
} from './webhooks.schemas';
import { afterCursor, PAGE_ORDER, toPage } from '../../pagination';

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

  api.route(
    {
      method: 'get',
      path: '/webhooks/:id/deliveries',
      summary: "An endpoint's deliveries, newest first: status, attempts, last response code and time, next attempt (ADMIN, MANAGER)",
      tags,
      request: { params: IdParams, query: ListDeliveriesQuery },
      responses: { 200: { description: 'A page of deliveries', schema: DeliveryPage } },
    },
    async (ctx, { params, query, em, auth }) => {
      const webhook = await loadWebhook(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', webhook);
      const where = { webhook, ...(query.status ? { status: query.status as WebhookDeliveryStatus } : {}), ...afterCursor(query.cursor) };
      const rows = await em.find(WebhookDelivery, where, { orderBy: PAGE_ORDER, limit: query.limit + 1 });
      ctx.body = toPage(rows, query.limit, presentDelivery);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/webhooks/:id/deliveries/:deliveryId/redeliver',
      summary:
        'Deliver a finished delivery again (ADMIN, MANAGER): the same message and `webhook-id`, on a fresh retry schedule; 409 while it is still PENDING',
      tags,
      request: { params: DeliveryParams },
      responses: {
        202: { description: 'Started again', schema: DeliveryOut },
        409: { description: 'delivery_pending: its attempts still go on' },
      },
    },
    async (ctx, { params, em, auth }) => {
      const delivery = await em.transactional(async (tx) => {
        const webhook = await loadWebhook(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', webhook);
        const found = await tx.findOne(WebhookDelivery, { id: params.deliveryId, webhook }, { lockMode: LockMode.PESSIMISTIC_WRITE });
        if (!found) throw AppError.notFound('Delivery');
        if (found.status === WebhookDeliveryStatus.PENDING)
          throw AppError.conflict(
            'delivery_pending',
            'This delivery is still being attempted; redeliver it once it is DELIVERED or FAILED',
          );
        await redeliver(tx, found);
        return found;
      });
      await startWebhookDeliveries(em, deps.temporal, deps.logger, [delivery]);
      ctx.status = 202;
      ctx.body = presentDelivery(delivery);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/webhooks/:id/test',
      summary: 'Send a `webhook.test` message to the endpoint now, whatever it subscribed to (ADMIN, MANAGER); follow it in its deliveries',
      tags,
      request: { params: IdParams },
      responses: { 202: { description: 'The delivery, PENDING', schema: DeliveryOut } },
    },
    async (ctx, { params, em, auth, actor }) => {
      const delivery = await em.transactional(async (tx) => {
        const webhook = await loadWebhook(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', webhook);
        return recordTestEvent(tx, webhook, actor.userId);
      });
      // After the commit: the workflow reads the row. Should the start fail, the worker's outbox drain starts it.
      await startWebhookDeliveries(em, deps.temporal, deps.logger, [delivery]);
      ctx.status = 202;
      ctx.body = presentDelivery(delivery);
    },
  );
}
