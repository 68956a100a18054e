import { Migration } from '@mikro-orm/migrations';

export class Migration20261129205640_tasks_and_tools extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" drop constraint if exists "executions_status_check";`);

    this.addSql(`alter table "tool_definitions" drop constraint "tool_definitions_name_unique";`);

    this.addSql(`alter table "tool_definitions" add column "organization_id" uuid null;`);
    this.addSql(
      `alter table "tool_definitions" add constraint "tool_definitions_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `create unique index "tool_definitions_builtin_name_unique" on "tool_definitions" ("name") where "organization_id" is null;`,
    );
    this.addSql(
      `alter table "tool_definitions" add constraint "tool_definitions_organization_id_name_unique" unique ("organization_id", "name");`,
    );

    this.addSql(`alter table "server_tools" add column "checked_at" timestamptz null, add column "log_tail" text null;`);

    this.addSql(
      `alter table "executions" add column "assignment_reason" text null, add column "retry_of_id" uuid null, add column "scheduled_for" timestamptz null, add column "tool_name" varchar(200) null, add column "tool_arguments" jsonb null;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_retry_of_id_foreign" foreign key ("retry_of_id") references "executions" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_status_check" check("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED'));`,
    );
    this.addSql(`create index "executions_retry_of_id_index" on "executions" ("retry_of_id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "executions" drop constraint if exists "executions_status_check";`);

    this.addSql(`alter table "executions" drop constraint "executions_retry_of_id_foreign";`);

    this.addSql(`alter table "tool_definitions" drop constraint "tool_definitions_organization_id_foreign";`);

    this.addSql(`drop index "executions_retry_of_id_index";`);
    this.addSql(
      `alter table "executions" drop column "assignment_reason", drop column "retry_of_id", drop column "scheduled_for", drop column "tool_name", drop column "tool_arguments";`,
    );

    this.addSql(
      `alter table "executions" add constraint "executions_status_check" check("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT'));`,
    );

    this.addSql(`alter table "server_tools" drop column "checked_at", drop column "log_tail";`);

    this.addSql(`drop index "tool_definitions_builtin_name_unique";`);
    this.addSql(`alter table "tool_definitions" drop constraint "tool_definitions_organization_id_name_unique";`);
    this.addSql(`alter table "tool_definitions" drop column "organization_id";`);

    this.addSql(`alter table "tool_definitions" add constraint "tool_definitions_name_unique" unique ("name");`);
  }
}
