import { ForbiddenError, subject } from '@casl/ability';
import type { EntityManager } from '@mikro-orm/postgresql';
import { AuditLog } from '../../../entities';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { scopedPage } from '../../list';
import { AppError } from '../../../domain/errors';
import { presentAuditLog } from '../../presenters';
import { IdParams } from '../common.schemas';
import { AuditOut, AuditPage, ListAuditQuery } from './audit.schemas';

export function auditRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['audit'];
  const em = () => deps.orm.em as EntityManager;

  api.route(
    {
      method: 'get',
      path: '/audit',
      summary: "The organisation's audit log, newest first (ADMIN, MANAGER)",
      tags,
      auth: true,
      request: { query: ListAuditQuery },
      responses: { 200: { description: 'A page of audit entries', schema: AuditPage } },
    },
    async (ctx, { query }) => {
      const auth = ctx.state.auth!;
      ForbiddenError.from(auth.ability).throwUnlessCan('read', subject('AuditLog', { organization: { id: auth.organizationId } } as unknown as AuditLog));
      const filters: Record<string, unknown>[] = [];
      if (query.action) filters.push({ action: query.action.endsWith('*') ? { $like: `${query.action.slice(0, -1).replace(/[%_\\]/g, '\\$&')}%` } : query.action });
      if (query.actorId) filters.push({ actor: query.actorId });
      if (query.resourceType) filters.push({ resourceType: query.resourceType });
      if (query.resourceId) filters.push({ resourceId: query.resourceId });
      if (query.from) filters.push({ createdAt: { $gte: new Date(query.from) } });
      if (query.to) filters.push({ createdAt: { $lt: new Date(query.to) } });
      ctx.body = await scopedPage(em(), AuditLog, auth, 'AuditLog', query, filters, presentAuditLog);
    },
  );

  api.route(
    { method: 'get', path: '/audit/:id', summary: 'One audit entry (ADMIN, MANAGER)', tags, auth: true, request: { params: IdParams }, responses: { 200: { description: 'The entry', schema: AuditOut } } },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const row = await em().findOne(AuditLog, { id: params.id, organization: auth.organizationId });
      if (!row) throw AppError.notFound('Audit entry');
      ForbiddenError.from(auth.ability).throwUnlessCan('read', row);
      ctx.body = presentAuditLog(row);
    },
  );
}
