import { Migration } from '@mikro-orm/migrations';

export class Migration20261207011500_task_run_workflow_index extends Migration {
  override async up(): Promise<void> {
    this.addSql(`create index "executions_task_run_workflow_id_index" on "executions" ("task_run_workflow_id");`);
  }

  override async down(): Promise<void> {
    this.addSql(`drop index "executions_task_run_workflow_id_index";`);
  }
}
