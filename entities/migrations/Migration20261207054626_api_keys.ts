import { Migration } from '@mikro-orm/migrations';

export class Migration20261207054626_api_keys extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "api_keys" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "owner_id" uuid not null, "name" varchar(200) not null, "role" text check ("role" in ('ADMIN', 'MANAGER', 'OPERATOR', 'VIEWER')) not null, "prefix" varchar(32) not null, "secret_hash" varchar(64) not null, "last_used_at" timestamptz null, "expires_at" timestamptz null, "revoked_at" timestamptz null, constraint "api_keys_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "api_keys_owner_id_created_at_index" on "api_keys" ("owner_id", "created_at");`);
    this.addSql(`create index "api_keys_organization_id_created_at_index" on "api_keys" ("organization_id", "created_at");`);

    this.addSql(
      `alter table "api_keys" add constraint "api_keys_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "api_keys" add constraint "api_keys_owner_id_foreign" foreign key ("owner_id") references "users" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(`alter table "audit_logs" add column "actor_api_key" jsonb null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "api_keys" cascade;`);

    this.addSql(`alter table "audit_logs" drop column "actor_api_key";`);
  }
}
