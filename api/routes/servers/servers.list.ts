import type { EntityManager } from '@mikro-orm/postgresql';
import { McpServer } from '../../../entities';
import type { AuthContext } from '../../auth/authenticate';
import { containing, scopedPage } from '../../list';
import type { z } from '../../zod';
import { presentServer } from './servers.presenters';
import type { ListServersQuery } from './servers.schemas';

/** A page of the servers `auth` may read, filtered as GET /api/servers and the MCP tool `list_servers` filter. */
export function serverPage(em: EntityManager, auth: AuthContext, query: z.output<typeof ListServersQuery>) {
  const filters: Record<string, unknown>[] = [];
  if (query.status) filters.push({ status: query.status });
  if (query.name) filters.push({ name: { $ilike: containing(query.name) } });
  return scopedPage(em, McpServer, auth, 'McpServer', query, filters, presentServer);
}
