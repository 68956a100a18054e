import { Entity, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { User } from './user.entity';

/**
 * One refresh token of a login. Rotation creates a new row in the same family and points
 * `replacedBy` at it; presenting a replaced token again revokes the whole family.
 */
@Entity({ tableName: 'sessions' })
@Index({ properties: ['user', 'revokedAt'] })
export class Session extends BaseEntity<'revokedAt' | 'replacedBy' | 'lastUsedAt'> {
  @ManyToOne(() => User, { deleteRule: 'cascade' })
  user!: User;

  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  /** SHA-256 of the refresh token; the token itself is never stored. */
  @Unique()
  @Property({ type: 'string', length: 64, hidden: true })
  refreshTokenHash!: string;

  @Index()
  @Property({ type: 'uuid' })
  familyId!: string;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  expiresAt!: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  revokedAt?: Date;

  @Property({ type: 'uuid', nullable: true })
  replacedBy?: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  lastUsedAt?: Date;

  @Property({ type: 'string', length: 500, nullable: true })
  userAgent?: string;

  @Property({ type: 'string', length: 64, nullable: true })
  ip?: string;
}
