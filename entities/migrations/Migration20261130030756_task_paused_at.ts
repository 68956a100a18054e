import { Migration } from '@mikro-orm/migrations';

export class Migration20261130030756_task_paused_at extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "tasks" add column "paused_at" timestamptz null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "tasks" drop column "paused_at";`);
  }
}
