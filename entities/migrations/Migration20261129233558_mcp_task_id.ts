import { Migration } from '@mikro-orm/migrations';

export class Migration20261129233558_mcp_task_id extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" add column "mcp_task_id" varchar(200) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "executions" drop column "mcp_task_id";`);
  }
}
