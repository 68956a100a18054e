import { Entity, Index, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';

/** The installation-wide tool catalog (seeded); servers and agents refer to it. */
@Entity({ tableName: 'tool_definitions' })
@Index({ properties: ['category'] })
export class ToolDefinition extends BaseEntity<'builtin'> {
  @Unique()
  @Property({ type: 'string', length: 64 })
  name!: string;

  @Property({ type: 'string', length: 120 })
  displayName!: string;

  @Property({ type: 'text', nullable: true })
  description?: string;

  @Property({ type: 'string', length: 32 })
  category!: string;

  @Property({ type: 'text' })
  installCommand!: string;

  @Property({ type: 'text' })
  uninstallCommand!: string;

  @Property({ type: 'text' })
  versionCommand!: string;

  @Property({ type: 'string', length: 500, nullable: true })
  versionRegex?: string;

  @Property({ type: 'string', length: 500, nullable: true })
  homepage?: string;

  @Property({ type: 'boolean', default: true })
  builtin: boolean = true;
}
