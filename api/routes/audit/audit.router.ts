import { ForbiddenError, subject } from '@casl/ability';
import { AuditLog } from '../../../entities';
import type { ApiRouter } from '../../api-router';
import { scopedPage } from '../../list';
import { loadAuditEntry } from '../../loaders';
import { IdParams } from '../common.schemas';
import { presentAuditLog } from './audit.presenters';
import { AuditOut, AuditPage, ListAuditQuery } from './audit.schemas';

export function auditRoutes(api: ApiRouter): void {
  const tags = ['audit'];

  api.route(
    {
      method: 'get',
      path: '/audit',
      summary: "The organisation's audit log, newest first (ADMIN, MANAGER)",
      tags,
      request: { query: ListAuditQuery },
      responses: { 200: { description: 'A page of audit entries', schema: AuditPage } },
    },
    async (ctx, { query, em, auth }) => {
      ForbiddenError.from(auth.ability).throwUnlessCan(
        'read',
        subject('AuditLog', { organization: { id: auth.organizationId } } as unknown as AuditLog),
      );
      const filters: Record<string, unknown>[] = [];
      if (query.action)
        filters.push({
          action: query.action.endsWith('*') ? { $like: `${query.action.slice(0, -1).replace(/[%_\\]/g, '\\$&')}%` } : query.action,
        });
      if (query.actorId) filters.push({ actor: query.actorId });
      if (query.resourceType) filters.push({ resourceType: query.resourceType });
      if (query.resourceId) filters.push({ resourceId: query.resourceId });
      if (query.from) filters.push({ createdAt: { $gte: new Date(query.from) } });
      if (query.to) filters.push({ createdAt: { $lt: new Date(query.to) } });
      ctx.body = await scopedPage(em, AuditLog, auth, 'AuditLog', query, filters, presentAuditLog);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/audit/:id',
      summary: 'One audit entry (ADMIN, MANAGER)',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The entry', schema: AuditOut } },
    },
    async (ctx, { params, em, auth }) => {
      const row = await loadAuditEntry(em, auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', row);
      ctx.body = presentAuditLog(row);
    },
  );
}
