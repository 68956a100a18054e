/**
 * Keyset pagination reads a deep page straight from the index: PostgreSQL starts at the cursor
 * instead of reading (and discarding) every row of the pages before it.
 */
import { httpFor, registerAccount, type Account, type Http } from '../test/api';
import { createTestContext, type TestContext } from '../test/harness';

interface PlanNode {
  'Node Type': string;
  'Rows Removed by Filter'?: number;
  'Actual Rows': number;
  Plans?: PlanNode[];
}

/** Rows each node read and threw away, summed over the plan. */
function discarded(node: PlanNode): number {
  return (node['Rows Removed by Filter'] ?? 0) + (node.Plans ?? []).reduce((sum, child) => sum + discarded(child), 0);
}

/** Rows the scans produced, summed over the plan's leaves. */
function scanned(node: PlanNode): number {
  if (!node.Plans?.length) return node['Actual Rows'];
  return node.Plans.reduce((sum, child) => sum + scanned(child), 0);
}

describe('keyset pagination', () => {
  let ctx: TestContext;
  let http: Http;
  let admin: Account;

  beforeAll(async () => {
    ctx = await createTestContext();
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Pagination Org');
    const conn = ctx.orm.em.getConnection();
    await conn.execute(
      `insert into tasks (id, created_at, updated_at, organization_id, title, kind, prompt, prompt_variables, priority, assignment_mode, required_capabilities, execution_mode, timezone, overlap_policy, max_retries, enabled, run_count, created_by_id)
       select gen_random_uuid(), now() - (g * interval '1 second'), now(), ?, 'bulk ' || g, 'prompt', 'hello', '{}', 'NORMAL', 'AUTO', '{}', 'IMMEDIATE', 'UTC', 'SKIP', 0, true, 0, ?
       from generate_series(1, 3000) g`,
      [admin.organizationId, admin.userId],
    );
    await conn.execute('analyze tasks');
  });
  afterAll(() => ctx?.close());

  it('starts a deep page at its cursor: the 2,500th row on is read, not the 2,500 before it', async () => {
    const conn = ctx.orm.em.getConnection();
    const [deep] = await conn.execute<{ created_at: Date; id: string }[]>(
      'select created_at, id from tasks where organization_id = ? order by created_at desc, id desc offset 2500 limit 1',
      [admin.organizationId],
    );
    const cursor = Buffer.from(JSON.stringify([new Date(deep!.created_at).toISOString(), deep!.id])).toString('base64url');

    // The statement the route runs, as the driver sends it.
    const knex = conn.getKnex();
    const statements: Array<{ sql: string; bindings: unknown[] }> = [];
    const seen = (query: { sql?: unknown; bindings?: unknown }) => {
      if (typeof query.sql === 'string' && query.sql.includes('from "tasks"'))
        statements.push({ sql: query.sql, bindings: Array.isArray(query.bindings) ? query.bindings : [] });
    };
    knex.on('query', seen);
    try {
      const page = await http.get('/api/tasks').query({ limit: 20, cursor }).auth(admin.accessToken, { type: 'bearer' }).expect(200);
      expect(page.body.items).toHaveLength(20);
      expect(page.body.items[0].title).toBe('bulk 2502');
    } finally {
      knex.removeListener('query', seen);
    }
    expect(statements).toHaveLength(1);

    const explained = await knex.raw(`explain (analyze, format json) ${statements[0]!.sql}`, statements[0]!.bindings as never[]);
    const plan = (explained.rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0]!.Plan;
    // Without the bound the index scan starts at the newest row and filters out the 2,500 before the cursor.
    expect(discarded(plan)).toBeLessThan(50);
    expect(scanned(plan)).toBeLessThan(50);
  });
});
