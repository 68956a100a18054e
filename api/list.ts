import type { EntityManager, EntityName } from '@mikro-orm/postgresql';
import type { AuthContext } from './auth/authenticate';
import type { SubjectType } from './auth/abilities';
import { accessibleFilter } from './auth/scope';
import { afterCursor, PAGE_ORDER, toPage } from './pagination';

/** `%text%` for ILIKE, with the caller's own % and _ taken literally. */
export function containing(text: string): string {
  return `%${text.replace(/[%_\\]/g, '\\$&')}%`;
}

/**
 * One page of a list route: the caller's CASL scope for `read`, their organisation, the
 * route's own filters and the keyset cursor. No read rule at all → an empty page, no query.
 */
export async function scopedPage<T extends { createdAt: Date; id: string }, P>(
  em: EntityManager,
  entity: EntityName<T>,
  auth: AuthContext,
  subjectType: SubjectType,
  query: { limit: number; cursor?: { createdAt: Date; id: string } },
  filters: Record<string, unknown>[],
  present: (row: T) => P,
  populate?: string[],
): Promise<{ items: P[]; nextCursor: string | null }> {
  const scope = accessibleFilter(auth.ability, 'read', subjectType);
  if (!scope) return { items: [], nextCursor: null };
  const where = { $and: [scope, { organization: auth.organizationId }, afterCursor(query.cursor), ...filters] };
  // Relations by a second `where id in (...)` query: cheaper to hydrate than a join per row.
  const rows = await em.find(entity, where as never, {
    orderBy: PAGE_ORDER as never,
    limit: query.limit + 1,
    ...(populate ? { populate: populate as never, strategy: 'select-in' as never } : {}),
  });
  return toPage(rows as T[], query.limit, present);
}
