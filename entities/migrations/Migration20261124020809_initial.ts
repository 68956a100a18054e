import { Migration } from '@mikro-orm/migrations';

export class Migration20261124020809_initial extends Migration {
  override async up(): Promise<void> {
    this.addSql(
      `create table "organizations" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "name" varchar(200) not null, "slug" varchar(100) not null, constraint "organizations_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "organizations" add constraint "organizations_slug_unique" unique ("slug");`);

    this.addSql(
      `create table "tool_definitions" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "name" varchar(64) not null, "display_name" varchar(120) not null, "description" text null, "category" varchar(32) not null, "install_command" text not null, "uninstall_command" text not null, "version_command" text not null, "version_regex" varchar(500) null, "homepage" varchar(500) null, "builtin" boolean not null default true, constraint "tool_definitions_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "tool_definitions" add constraint "tool_definitions_name_unique" unique ("name");`);
    this.addSql(`create index "tool_definitions_category_index" on "tool_definitions" ("category");`);

    this.addSql(
      `create table "users" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "email" varchar(320) not null, "password_hash" varchar(255) not null, "name" varchar(200) not null, "role" text check ("role" in ('ADMIN', 'MANAGER', 'OPERATOR', 'VIEWER')) not null, "last_login_at" timestamptz null, constraint "users_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "users" add constraint "users_email_unique" unique ("email");`);
    this.addSql(`create index "users_organization_id_role_index" on "users" ("organization_id", "role");`);

    this.addSql(
      `create table "sessions" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "user_id" uuid not null, "organization_id" uuid not null, "refresh_token_hash" varchar(64) not null, "family_id" uuid not null, "expires_at" timestamptz not null, "revoked_at" timestamptz null, "replaced_by" uuid null, "last_used_at" timestamptz null, "user_agent" varchar(500) null, "ip" varchar(64) null, constraint "sessions_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "sessions" add constraint "sessions_refresh_token_hash_unique" unique ("refresh_token_hash");`);
    this.addSql(`create index "sessions_family_id_index" on "sessions" ("family_id");`);
    this.addSql(`create index "sessions_user_id_revoked_at_index" on "sessions" ("user_id", "revoked_at");`);

    this.addSql(
      `create table "mcp_servers" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "name" varchar(100) not null, "description" text null, "url" varchar(2048) not null, "transport" text check ("transport" in ('streamable-http', 'sse')) not null default 'streamable-http', "master_token_ciphertext" text not null, "master_token_key_id" varchar(32) not null, "master_token_last4" varchar(4) null, "status" text check ("status" in ('ONLINE', 'OFFLINE', 'DEGRADED', 'UNKNOWN')) not null default 'UNKNOWN', "last_check_at" timestamptz null, "last_latency_ms" int null, "last_error" text null, "server_info" jsonb null, "protocol_version" varchar(32) null, "tools_snapshot" jsonb null, "tools_hash" varchar(64) null, "last_tools_change" jsonb null, "created_by_id" uuid null, constraint "mcp_servers_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "mcp_servers_master_token_key_id_index" on "mcp_servers" ("master_token_key_id");`);
    this.addSql(`create index "mcp_servers_organization_id_status_index" on "mcp_servers" ("organization_id", "status");`);
    this.addSql(`alter table "mcp_servers" add constraint "mcp_servers_organization_id_name_unique" unique ("organization_id", "name");`);

    this.addSql(
      `create table "server_tools" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "server_id" uuid not null, "tool_id" uuid not null, "status" text check ("status" in ('NOT_INSTALLED', 'INSTALLING', 'INSTALLED', 'REMOVING', 'FAILED')) not null default 'NOT_INSTALLED', "installed_version" varchar(100) null, "last_error" text null, "workflow_id" varchar(200) null, "installed_at" timestamptz null, constraint "server_tools_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "server_tools_organization_id_index" on "server_tools" ("organization_id");`);
    this.addSql(`create index "server_tools_tool_id_index" on "server_tools" ("tool_id");`);
    this.addSql(`alter table "server_tools" add constraint "server_tools_server_id_tool_id_unique" unique ("server_id", "tool_id");`);

    this.addSql(
      `create table "audit_logs" ("id" uuid not null, "organization_id" uuid not null, "actor_id" uuid null, "actor_email" varchar(320) null, "action" varchar(100) not null, "resource_type" varchar(64) not null, "resource_id" varchar(64) null, "changes" jsonb null, "ip" varchar(64) null, "request_id" varchar(64) null, "created_at" timestamptz not null, constraint "audit_logs_pkey" primary key ("id"));`,
    );
    this.addSql(
      `create index "audit_logs_organization_id_actor_id_created_at_index" on "audit_logs" ("organization_id", "actor_id", "created_at");`,
    );
    this.addSql(
      `create index "audit_logs_organization_id_resource_type_resource_id_index" on "audit_logs" ("organization_id", "resource_type", "resource_id");`,
    );
    this.addSql(
      `create index "audit_logs_organization_id_action_created_at_index" on "audit_logs" ("organization_id", "action", "created_at");`,
    );
    this.addSql(`create index "audit_logs_organization_id_created_at_index" on "audit_logs" ("organization_id", "created_at");`);

    this.addSql(
      `create table "agents" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "server_id" uuid not null, "name" varchar(100) not null, "display_name" varchar(200) not null, "description" text null, "role" text check ("role" in ('MASTER', 'SUPERVISOR', 'WORKER')) not null, "status" text check ("status" in ('PENDING_VALIDATION', 'ACTIVE', 'INACTIVE', 'BUSY', 'ERROR')) not null default 'PENDING_VALIDATION', "supervisor_id" uuid null, "capabilities" text[] not null default '{}', "max_concurrency" int not null default 1, "last_error" text null, "created_by_id" uuid null, "validated_by_id" uuid null, "validated_at" timestamptz null, constraint "agents_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "agents_supervisor_id_index" on "agents" ("supervisor_id");`);
    this.addSql(`create index "agents_capabilities_gin" on "agents" using gin ("capabilities");`);
    this.addSql(`create index "agents_organization_id_role_index" on "agents" ("organization_id", "role");`);
    this.addSql(`create index "agents_organization_id_status_index" on "agents" ("organization_id", "status");`);
    this.addSql(`alter table "agents" add constraint "agents_server_id_name_unique" unique ("server_id", "name");`);

    this.addSql(
      `create table "tasks" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "title" varchar(200) not null, "description" text null, "kind" text check ("kind" in ('prompt', 'tool')) not null default 'prompt', "prompt" text null, "prompt_variables" jsonb not null default '{}', "tool_name" varchar(200) null, "tool_arguments" jsonb null, "priority" text check ("priority" in ('LOW', 'NORMAL', 'HIGH', 'URGENT')) not null default 'NORMAL', "assignment_mode" text check ("assignment_mode" in ('MANUAL', 'AUTO', 'BY_CAPABILITY')) not null default 'MANUAL', "agent_id" uuid null, "required_capabilities" text[] not null default '{}', "execution_mode" text check ("execution_mode" in ('IMMEDIATE', 'SCHEDULED', 'RECURRING')) not null default 'IMMEDIATE', "scheduled_at" timestamptz null, "cron_expression" varchar(120) null, "timezone" varchar(64) not null default 'UTC', "overlap_policy" text check ("overlap_policy" in ('SKIP', 'BUFFER_ONE', 'BUFFER_ALL', 'CANCEL_OTHER', 'TERMINATE_OTHER', 'ALLOW_ALL')) not null default 'SKIP', "timeout_ms" int null, "max_retries" int not null default 0, "enabled" boolean not null default true, "last_run_at" timestamptz null, "next_run_at" timestamptz null, "run_count" int not null default 0, "created_by_id" uuid null, constraint "tasks_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "tasks_agent_id_index" on "tasks" ("agent_id");`);
    this.addSql(`create index "tasks_organization_id_created_at_index" on "tasks" ("organization_id", "created_at");`);
    this.addSql(`create index "tasks_organization_id_execution_mode_index" on "tasks" ("organization_id", "execution_mode");`);
    this.addSql(`create index "tasks_organization_id_enabled_index" on "tasks" ("organization_id", "enabled");`);

    this.addSql(
      `create table "executions" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "agent_id" uuid null, "task_id" uuid null, "trigger" text check ("trigger" in ('manual', 'api', 'schedule', 'master', 'retry')) not null, "triggered_by_id" uuid null, "status" text check ("status" in ('QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT')) not null default 'QUEUED', "prompt" text null, "context" jsonb null, "output" text null, "result" jsonb null, "error" text null, "tokens_used" int null, "todos" jsonb not null default '[]', "attempt" int not null default 1, "workflow_id" varchar(200) null, "run_id" varchar(64) null, "started_at" timestamptz null, "completed_at" timestamptz null, "duration_ms" int null, constraint "executions_pkey" primary key ("id"));`,
    );
    this.addSql(`alter table "executions" add constraint "executions_workflow_id_unique" unique ("workflow_id");`);
    this.addSql(`create index "executions_task_id_created_at_index" on "executions" ("task_id", "created_at");`);
    this.addSql(`create index "executions_agent_id_status_created_at_index" on "executions" ("agent_id", "status", "created_at");`);
    this.addSql(`create index "executions_organization_id_created_at_index" on "executions" ("organization_id", "created_at");`);
    this.addSql(
      `create index "executions_organization_id_status_created_at_index" on "executions" ("organization_id", "status", "created_at");`,
    );

    this.addSql(
      `create table "execution_events" ("id" uuid not null, "execution_id" uuid not null, "organization_id" uuid not null, "seq" int not null, "type" text check ("type" in ('status', 'output', 'progress', 'todo', 'tool_call', 'tool_result', 'file_change')) not null, "attempt" int not null default 1, "payload" jsonb not null, "created_at" timestamptz not null, constraint "execution_events_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "execution_events_organization_id_index" on "execution_events" ("organization_id");`);
    this.addSql(`alter table "execution_events" add constraint "execution_events_execution_id_seq_unique" unique ("execution_id", "seq");`);

    this.addSql(
      `create table "agent_tool_permissions" ("id" uuid not null, "created_at" timestamptz not null, "updated_at" timestamptz not null, "organization_id" uuid not null, "agent_id" uuid not null, "tool_id" uuid not null, "can_use" boolean not null default true, "allowed_commands" text[] not null default '{}', "blocked_commands" text[] not null default '{}', "granted_by_id" uuid null, constraint "agent_tool_permissions_pkey" primary key ("id"));`,
    );
    this.addSql(`create index "agent_tool_permissions_organization_id_index" on "agent_tool_permissions" ("organization_id");`);
    this.addSql(`create index "agent_tool_permissions_tool_id_index" on "agent_tool_permissions" ("tool_id");`);
    this.addSql(
      `alter table "agent_tool_permissions" add constraint "agent_tool_permissions_agent_id_tool_id_unique" unique ("agent_id", "tool_id");`,
    );

    this.addSql(
      `alter table "users" add constraint "users_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "sessions" add constraint "sessions_user_id_foreign" foreign key ("user_id") references "users" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "sessions" add constraint "sessions_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "mcp_servers" add constraint "mcp_servers_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "mcp_servers" add constraint "mcp_servers_created_by_id_foreign" foreign key ("created_by_id") references "users" ("id") on update cascade on delete set null;`,
    );

    this.addSql(
      `alter table "server_tools" add constraint "server_tools_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "server_tools" add constraint "server_tools_server_id_foreign" foreign key ("server_id") references "mcp_servers" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "server_tools" add constraint "server_tools_tool_id_foreign" foreign key ("tool_id") references "tool_definitions" ("id") on update cascade on delete restrict;`,
    );

    this.addSql(
      `alter table "audit_logs" add constraint "audit_logs_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "audit_logs" add constraint "audit_logs_actor_id_foreign" foreign key ("actor_id") references "users" ("id") on update cascade on delete set null;`,
    );

    this.addSql(
      `alter table "agents" add constraint "agents_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "agents" add constraint "agents_server_id_foreign" foreign key ("server_id") references "mcp_servers" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "agents" add constraint "agents_supervisor_id_foreign" foreign key ("supervisor_id") references "agents" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "agents" add constraint "agents_created_by_id_foreign" foreign key ("created_by_id") references "users" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "agents" add constraint "agents_validated_by_id_foreign" foreign key ("validated_by_id") references "users" ("id") on update cascade on delete set null;`,
    );

    this.addSql(
      `alter table "tasks" add constraint "tasks_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "tasks" add constraint "tasks_agent_id_foreign" foreign key ("agent_id") references "agents" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "tasks" add constraint "tasks_created_by_id_foreign" foreign key ("created_by_id") references "users" ("id") on update cascade on delete set null;`,
    );

    this.addSql(
      `alter table "executions" add constraint "executions_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_agent_id_foreign" foreign key ("agent_id") references "agents" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_task_id_foreign" foreign key ("task_id") references "tasks" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_triggered_by_id_foreign" foreign key ("triggered_by_id") references "users" ("id") on update cascade on delete set null;`,
    );

    this.addSql(
      `alter table "execution_events" add constraint "execution_events_execution_id_foreign" foreign key ("execution_id") references "executions" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "execution_events" add constraint "execution_events_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );

    this.addSql(
      `alter table "agent_tool_permissions" add constraint "agent_tool_permissions_organization_id_foreign" foreign key ("organization_id") references "organizations" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "agent_tool_permissions" add constraint "agent_tool_permissions_agent_id_foreign" foreign key ("agent_id") references "agents" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "agent_tool_permissions" add constraint "agent_tool_permissions_tool_id_foreign" foreign key ("tool_id") references "tool_definitions" ("id") on update cascade on delete cascade;`,
    );
    this.addSql(
      `alter table "agent_tool_permissions" add constraint "agent_tool_permissions_granted_by_id_foreign" foreign key ("granted_by_id") references "users" ("id") on update cascade on delete set null;`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "users" drop constraint "users_organization_id_foreign";`);

    this.addSql(`alter table "sessions" drop constraint "sessions_organization_id_foreign";`);

    this.addSql(`alter table "mcp_servers" drop constraint "mcp_servers_organization_id_foreign";`);

    this.addSql(`alter table "server_tools" drop constraint "server_tools_organization_id_foreign";`);

    this.addSql(`alter table "audit_logs" drop constraint "audit_logs_organization_id_foreign";`);

    this.addSql(`alter table "agents" drop constraint "agents_organization_id_foreign";`);

    this.addSql(`alter table "tasks" drop constraint "tasks_organization_id_foreign";`);

    this.addSql(`alter table "executions" drop constraint "executions_organization_id_foreign";`);

    this.addSql(`alter table "execution_events" drop constraint "execution_events_organization_id_foreign";`);

    this.addSql(`alter table "agent_tool_permissions" drop constraint "agent_tool_permissions_organization_id_foreign";`);

    this.addSql(`alter table "server_tools" drop constraint "server_tools_tool_id_foreign";`);

    this.addSql(`alter table "agent_tool_permissions" drop constraint "agent_tool_permissions_tool_id_foreign";`);

    this.addSql(`alter table "sessions" drop constraint "sessions_user_id_foreign";`);

    this.addSql(`alter table "mcp_servers" drop constraint "mcp_servers_created_by_id_foreign";`);

    this.addSql(`alter table "audit_logs" drop constraint "audit_logs_actor_id_foreign";`);

    this.addSql(`alter table "agents" drop constraint "agents_created_by_id_foreign";`);

    this.addSql(`alter table "agents" drop constraint "agents_validated_by_id_foreign";`);

    this.addSql(`alter table "tasks" drop constraint "tasks_created_by_id_foreign";`);

    this.addSql(`alter table "executions" drop constraint "executions_triggered_by_id_foreign";`);

    this.addSql(`alter table "agent_tool_permissions" drop constraint "agent_tool_permissions_granted_by_id_foreign";`);

    this.addSql(`alter table "server_tools" drop constraint "server_tools_server_id_foreign";`);

    this.addSql(`alter table "agents" drop constraint "agents_server_id_foreign";`);

    this.addSql(`alter table "agents" drop constraint "agents_supervisor_id_foreign";`);

    this.addSql(`alter table "tasks" drop constraint "tasks_agent_id_foreign";`);

    this.addSql(`alter table "executions" drop constraint "executions_agent_id_foreign";`);

    this.addSql(`alter table "agent_tool_permissions" drop constraint "agent_tool_permissions_agent_id_foreign";`);

    this.addSql(`alter table "executions" drop constraint "executions_task_id_foreign";`);

    this.addSql(`alter table "execution_events" drop constraint "execution_events_execution_id_foreign";`);

    this.addSql(`drop table if exists "organizations" cascade;`);

    this.addSql(`drop table if exists "tool_definitions" cascade;`);

    this.addSql(`drop table if exists "users" cascade;`);

    this.addSql(`drop table if exists "sessions" cascade;`);

    this.addSql(`drop table if exists "mcp_servers" cascade;`);

    this.addSql(`drop table if exists "server_tools" cascade;`);

    this.addSql(`drop table if exists "audit_logs" cascade;`);

    this.addSql(`drop table if exists "agents" cascade;`);

    this.addSql(`drop table if exists "tasks" cascade;`);

    this.addSql(`drop table if exists "executions" cascade;`);

    this.addSql(`drop table if exists "execution_events" cascade;`);

    this.addSql(`drop table if exists "agent_tool_permissions" cascade;`);
  }
}
