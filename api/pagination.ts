import { isStorableInstant } from './timestamps';
import { z } from './zod';

/** Keyset pagination on (createdAt desc, id desc): stable under inserts, no OFFSET scans. */

interface CursorPosition {
  createdAt: Date;
  id: string;
}

export function encodeCursor(row: CursorPosition): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString('base64url');
}

const cursorSchema = z
  .string()
  .max(200)
  .transform((value, ctx): CursorPosition => {
    try {
      const [at, id] = JSON.parse(Buffer.from(value, 'base64url').toString('utf8')) as [string, string];
      const createdAt = new Date(at);
      if (!isStorableInstant(createdAt) || !z.uuid().safeParse(id).success) throw new Error('bad cursor');
      return { createdAt, id };
    } catch {
      ctx.addIssue({ code: 'custom', message: 'invalid cursor; pass the nextCursor of a previous page' });
      return z.NEVER;
    }
  });

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(100).default(20).openapi({ description: 'Page size (1-100)' }),
  cursor: cursorSchema.optional().openapi({
    description: 'nextCursor of the previous page, as it was given (base64url)',
    type: 'string',
    maxLength: 200,
    pattern: '^[A-Za-z0-9_-]*$',
  }),
};

/**
 * The rows after the cursor. The `createdAt <= ` bound is implied by the `$or`, but only it can
 * bound an index scan on (organization, createdAt): without it PostgreSQL reads every row of
 * the organisation's pages before this one (or all of them, and sorts) for each page.
 */
export function afterCursor(cursor: CursorPosition | undefined): Record<string, unknown> {
  if (!cursor) return {};
  return {
    createdAt: { $lte: cursor.createdAt },
    $or: [{ createdAt: { $lt: cursor.createdAt } }, { createdAt: cursor.createdAt, id: { $lt: cursor.id } }],
  };
}

export const PAGE_ORDER = { createdAt: 'desc', id: 'desc' } as const;

/** Fetch `limit + 1` rows, then call this: it trims and says whether there is a next page. */
export function toPage<T extends CursorPosition, P>(
  rows: T[],
  limit: number,
  present: (row: T) => P,
): { items: P[]; nextCursor: string | null } {
  const hasMore = rows.length > limit;
  const items = hasMore ? rows.slice(0, limit) : rows;
  return { items: items.map(present), nextCursor: hasMore ? encodeCursor(items[items.length - 1]!) : null };
}

export function pageSchema<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() });
}
