import { Migration } from '@mikro-orm/migrations';

export class Migration20261124022316_login_attempts extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "login_attempts" ("id" uuid not null, "email" varchar(320) not null, "ip" varchar(64) not null, "succeeded" boolean not null, "created_at" timestamptz not null, constraint "login_attempts_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "login_attempts_ip_created_at_index" on "login_attempts" ("ip", "created_at");`);
    this.addSql(`create index "login_attempts_email_created_at_index" on "login_attempts" ("email", "created_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "login_attempts" cascade;`);
  }
}
