import { Entity, Enum, Index, ManyToOne, Property } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { User, UserRole } from './user.entity';

/**
 * A long-lived bearer credential for a person's scripts and MCP clients (docs/auth.md, API
 * keys). It acts for its owner, with at most `role`: the owner's current role caps it on
 * every request, so a demoted owner's keys shrink with them, and a deleted owner's go with
 * the user row. Only a keyed hash of the secret is stored; the secret is shown once.
 */
@Entity({ tableName: 'api_keys' })
@Index({ properties: ['organization', 'createdAt'] })
@Index({ properties: ['owner', 'createdAt'] })
export class ApiKey extends BaseEntity<'lastUsedAt' | 'expiresAt' | 'revokedAt'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @ManyToOne(() => User, { deleteRule: 'cascade' })
  owner!: User;

  @Property({ type: 'string', length: 200 })
  name!: string;

  /** The most this key may do; the owner's current role caps it (the lower of the two applies). */
  @Enum({ items: () => UserRole })
  role!: UserRole;

  /** The key's first characters (`mcpf_` and 8 more), enough to recognise it in a list; not secret. */
  @Property({ type: 'string', length: 32 })
  prefix!: string;

  /** HMAC-SHA256 of the whole key (api/auth/api-keys.ts); the key itself is never stored. */
  @Property({ type: 'string', length: 64, hidden: true, lazy: true })
  secretHash!: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  lastUsedAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  expiresAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  revokedAt?: Date;
}
