import { Entity, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';

/**
 * The tool catalog: built-in entries (seeded, no organisation, read-only) plus each
 * organisation's own. A name is unique among the built-ins and within an organisation.
 */
@Entity({ tableName: 'tool_definitions' })
@Index({ properties: ['category'] })
@Unique({ properties: ['organization', 'name'] })
@Unique({
  name: 'tool_definitions_builtin_name_unique',
  expression: 'create unique index "tool_definitions_builtin_name_unique" on "tool_definitions" ("name") where "organization_id" is null',
})
export class ToolDefinition extends BaseEntity<'builtin'> {
  /** The owning organisation; none for the built-in catalog. */
  @ManyToOne(() => Organization, { nullable: true, deleteRule: 'cascade' })
  organization?: Organization;

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
