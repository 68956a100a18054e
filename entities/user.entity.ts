import { Entity, Enum, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';

export enum UserRole {
  ADMIN = 'ADMIN',
  MANAGER = 'MANAGER',
  OPERATOR = 'OPERATOR',
  VIEWER = 'VIEWER',
}

@Entity({ tableName: 'users' })
@Index({ properties: ['organization', 'role'] })
export class User extends BaseEntity<'lastLoginAt'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  /** Stored lower-cased; unique across the whole installation so login needs no organisation. */
  @Unique()
  @Property({ type: 'string', length: 320 })
  email!: string;

  @Property({ type: 'string', hidden: true, lazy: true })
  passwordHash!: string;

  @Property({ type: 'string', length: 200 })
  name!: string;

  @Enum({ items: () => UserRole })
  role!: UserRole;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  lastLoginAt?: Date;
}
