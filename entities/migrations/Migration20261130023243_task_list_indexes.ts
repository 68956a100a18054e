import { Migration } from '@mikro-orm/migrations';

export class Migration20261130023243_task_list_indexes extends Migration {
  override async up(): Promise<void> {
    this.addSql(`drop index "tasks_organization_id_enabled_index";`);
    this.addSql(`drop index "tasks_organization_id_execution_mode_index";`);

    this.addSql(
      `create index "tasks_organization_id_execution_mode_created_at_index" on "tasks" ("organization_id", "execution_mode", "created_at");`,
    );
    this.addSql(`create index "tasks_organization_id_enabled_created_at_index" on "tasks" ("organization_id", "enabled", "created_at");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "tasks_organization_id_execution_mode_created_at_index";`);
    this.addSql(`drop index "tasks_organization_id_enabled_created_at_index";`);

    this.addSql(`create index "tasks_organization_id_enabled_index" on "tasks" ("organization_id", "enabled");`);
    this.addSql(`create index "tasks_organization_id_execution_mode_index" on "tasks" ("organization_id", "execution_mode");`);
  }
}
