import { Entity, Index, PrimaryKey, Property } from '@mikro-orm/core';

/**
 * One request counter of api/rate-limit.ts: how many requests `key` (rule + IP, user or login)
 * made in the window that ends at `resetAt`. Kept in PostgreSQL so every API instance counts
 * together; written only by one upsert statement, and rows past `resetAt` are pruned.
 */
@Entity({ tableName: 'rate_limit_counters' })
export class RateLimitCounter {
  @PrimaryKey({ type: 'string', length: 200 })
  key!: string;

  @Property({ type: 'integer' })
  count!: number;

  @Index()
  @Property({ type: 'datetime', columnType: 'timestamptz' })
  resetAt!: Date;
}
