import { Migration } from '@mikro-orm/migrations';

export class Migration20261207084841_delegation extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" drop constraint if exists "executions_trigger_check";`);

    this.addSql(`alter table "execution_events" drop constraint if exists "execution_events_type_check";`);

    this.addSql(
      `alter table "executions" add column "parent_execution_id" uuid null, add column "depth" smallint not null default 0, add column "delegation_key" varchar(200) null;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_parent_execution_id_foreign" foreign key ("parent_execution_id") references "executions" ("id") on update cascade on delete set null;`,
    );
    this.addSql(
      `alter table "executions" add constraint "executions_trigger_check" check("trigger" in ('manual', 'api', 'schedule', 'master', 'retry', 'delegation'));`,
    );
    this.addSql(`create index "executions_parent_execution_id_index" on "executions" ("parent_execution_id");`);
    this.addSql(
      `alter table "executions" add constraint "executions_parent_execution_id_delegation_key_unique" unique ("parent_execution_id", "delegation_key");`,
    );

    this.addSql(
      `alter table "execution_events" add constraint "execution_events_type_check" check("type" in ('status', 'output', 'progress', 'todo', 'tool_call', 'tool_result', 'file_change', 'input_required', 'input_answered', 'delegation'));`,
    );
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "execution_events" drop constraint if exists "execution_events_type_check";`);

    this.addSql(`alter table "executions" drop constraint if exists "executions_trigger_check";`);

    this.addSql(`alter table "executions" drop constraint "executions_parent_execution_id_foreign";`);

    this.addSql(
      `alter table "execution_events" add constraint "execution_events_type_check" check("type" in ('status', 'output', 'progress', 'todo', 'tool_call', 'tool_result', 'file_change', 'input_required', 'input_answered'));`,
    );

    this.addSql(`drop index "executions_parent_execution_id_index";`);
    this.addSql(`alter table "executions" drop constraint "executions_parent_execution_id_delegation_key_unique";`);
    this.addSql(`alter table "executions" drop column "parent_execution_id", drop column "depth", drop column "delegation_key";`);

    this.addSql(
      `alter table "executions" add constraint "executions_trigger_check" check("trigger" in ('manual', 'api', 'schedule', 'master', 'retry'));`,
    );
  }
}
