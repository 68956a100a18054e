import { Migration } from '@mikro-orm/migrations';

export class Migration20261129195249_rate_limits extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "rate_limit_counters" ("key" varchar(200) not null, "count" int not null, "reset_at" timestamptz not null, constraint "rate_limit_counters_pkey" primary key ("key"));`,
    );
    this.addSql(`create index "rate_limit_counters_reset_at_index" on "rate_limit_counters" ("reset_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "rate_limit_counters" cascade;`);
  }
}
