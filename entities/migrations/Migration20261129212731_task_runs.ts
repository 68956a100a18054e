import { Migration } from '@mikro-orm/migrations';

export class Migration20261129212731_task_runs extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "tasks" add column "deleted_at" timestamptz null;`);

    this.addSql(`alter table "executions" add column "task_run_workflow_id" varchar(200) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "executions" drop column "task_run_workflow_id";`);

    this.addSql(`alter table "tasks" drop column "deleted_at";`);
  }
}
