import { checkTemporal } from '../../../lib/temporal';
import type { ApiRouter } from '../../api-router';
import type { AppDeps } from '../../deps';
import { waitAtMost } from '../../wait';
import { HealthResponse } from './health.schemas';

const CHECK_TIMEOUT_MS = 2000;

function reason(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0]!.slice(0, 200) : 'unreachable';
}

export function healthRoutes(api: ApiRouter, deps: AppDeps): void {
  api.publicRoute(
    {
      method: 'get',
      path: '/health',
      summary: 'Liveness of the API and its dependencies',
      tags: ['system'],
      responses: {
        200: { description: 'Every part answers', schema: HealthResponse },
        503: { description: 'A part is failing; `errors` names it', schema: HealthResponse },
      },
    },
    async (ctx, { em }) => {
      const [db, temporal] = await Promise.allSettled([
        waitAtMost(
          em.getConnection().execute('select 1'),
          CHECK_TIMEOUT_MS,
          () => new Error(`PostgreSQL did not answer within ${CHECK_TIMEOUT_MS} ms`),
        ),
        waitAtMost(
          checkTemporal(deps.temporal.connection, deps.config.temporal.namespace, CHECK_TIMEOUT_MS),
          CHECK_TIMEOUT_MS,
          () => new Error(`Temporal did not answer within ${CHECK_TIMEOUT_MS} ms`),
        ),
      ]);
      const errors: Record<string, string> = {};
      if (db.status === 'rejected') errors.db = reason(db.reason);
      if (temporal.status === 'rejected') errors.temporal = reason(temporal.reason);
      const ok = Object.keys(errors).length === 0;
      ctx.status = ok ? 200 : 503;
      ctx.body = {
        status: ok ? 'ok' : 'error',
        db: db.status === 'fulfilled' ? 'ok' : 'error',
        temporal: temporal.status === 'fulfilled' ? 'ok' : 'error',
        ...(ok ? {} : { errors }),
      };
    },
  );
}
