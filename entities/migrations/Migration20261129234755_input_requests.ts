import { Migration } from '@mikro-orm/migrations';

export class Migration20261129234755_input_requests extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "execution_inputs" ("id" uuid not null, "organization_id" uuid not null, "execution_id" uuid not null, "task_id" varchar(200) null, "request_key" varchar(300) not null, "message" text not null, "requested_schema" jsonb not null, "status" text check ("status" in ('PENDING', 'ANSWERED', 'DELIVERED', 'EXPIRED', 'CANCELLED')) not null default 'PENDING', "action" varchar(10) null, "content" jsonb null, "answered_by_id" uuid null, "answered_at" timestamptz null, "expires_at" timestamptz not null, "created_at" timestamptz not null, constraint "execution_inputs_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "execution_inputs_execution_id_created_at_index" on "execution_inputs" ("execution_id", "created_at");`);
    this.addSql(`create index "execution_inputs_organization_id_status_index" on "execution_inputs" ("organization_id", "status");`);
    this.addSql(`create unique index "execution_inputs_one_pending" on "execution_inputs" ("execution_id") where "status" = 'PENDING';`);
    this.addSql(
      `create unique index "execution_inputs_open_request_key" on "execution_inputs" ("execution_id", "request_key") where "status" in ('PENDING', 'ANSWERED');`,
    );

    this.addSql(
      `alter table "execution_inputs" add constraint "execution_inputs_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "execution_inputs" add constraint "execution_inputs_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "execution_inputs" add constraint "execution_inputs_answered_by_id_foreign" foreign key ("answered_by_id") references "users" ("id") on update cascade on delete set null;`,
    );

    this.addSql(`alter table "agents" drop constraint if exists "agents_status_check";`);

    this.addSql(`alter table "executions" drop constraint if exists "executions_status_check";`);

    this.addSql(`alter table "execution_events" drop constraint if exists "execution_events_type_check";`);

    this.addSql(
      `alter table "agents" add constraint "agents_status_check" check("status" in ('PENDING_VALIDATION', 'ACTIVE', 'INACTIVE', 'BUSY', 'WAITING_INPUT', 'ERROR'));`,
    );

    this.addSql(`alter table "executions" add column "input_timeout_ms" int null, add column "run_ms_used" int not null default 0;`);
    this.addSql(
      `alter table "executions" add constraint "executions_status_check" check("status" in ('QUEUED', 'RUNNING', 'WAITING_INPUT', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED'));`,
    );

    this.addSql(
      `alter table "execution_events" add constraint "execution_events_type_check" check("type" in ('status', 'output', 'progress', 'todo', 'tool_call', 'tool_result', 'file_change', 'input_required', 'input_answered'));`,
    );

    this.addSql(`alter table "agent_tool_permissions" add column "requires_approval" boolean not null default false;`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop table if exists "execution_inputs" cascade;`);

    this.addSql(`alter table "agents" drop constraint if exists "agents_status_check";`);

    this.addSql(`alter table "execution_events" drop constraint if exists "execution_events_type_check";`);

    this.addSql(`alter table "executions" drop constraint if exists "executions_status_check";`);

    this.addSql(`alter table "agent_tool_permissions" drop column "requires_approval";`);

    this.addSql(
      `alter table "agents" add constraint "agents_status_check" check("status" in ('PENDING_VALIDATION', 'ACTIVE', 'INACTIVE', 'BUSY', 'ERROR'));`,
    );

    this.addSql(
      `alter table "execution_events" add constraint "execution_events_type_check" check("type" in ('status', 'output', 'progress', 'todo', 'tool_call', 'tool_result', 'file_change'));`,
    );

    this.addSql(`alter table "executions" drop column "input_timeout_ms", drop column "run_ms_used";`);

    this.addSql(
      `alter table "executions" add constraint "executions_status_check" check("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED'));`,
    );
  }
}
