import { Migration } from '@mikro-orm/migrations';

export class Migration20261207012630_execution_trace_id extends Migration {
  override async up(): Promise<void> {
    this.addSql(`alter table "executions" add column "trace_id" varchar(32) null;`);
  }

  override async down(): Promise<void> {
    this.addSql(`alter table "executions" drop column "trace_id";`);
  }
}
