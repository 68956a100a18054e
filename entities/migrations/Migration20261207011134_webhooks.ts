import { Migration } from '@mikro-orm/migrations';

export class Migration20261207011134_webhooks extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "webhooks" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "url" varchar(2048) not null, "events" jsonb not null, "enabled" boolean not null default true, "description" text null, "secret_ciphertext" text not null, "secret_key_id" varchar(32) not null, "previous_secret_ciphertext" text null, "previous_secret_key_id" varchar(32) null, "previous_secret_expires_at" timestamptz null, "disabled_reason" text null, "created_by_id" uuid null, constraint "webhooks_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "webhooks_secret_key_id_index" on "webhooks" ("secret_key_id");`);
    this.addSql(`create index "webhooks_organization_id_enabled_index" on "webhooks" ("organization_id", "enabled");`);

    this.addSql(
      `alter table "webhooks" add constraint "webhooks_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "webhooks" add constraint "webhooks_created_by_id_foreign" foreign key ("created_by_id") references "users" ("id") on update cascade on delete set null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "webhooks" cascade;`);
  }
}
