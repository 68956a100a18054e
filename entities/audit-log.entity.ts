import { randomUUID } from 'node:crypto';
import { Entity, Index, ManyToOne, OptionalProps, PrimaryKey, Property } from '@mikro-orm/core';
import { Organization } from './organization.entity';
import { User } from './user.entity';

/** The API key an entry was made through: never its secret. */
export interface AuditApiKey {
  id: string;
  name: string;
  prefix: string;
}

/** Append-only record of who changed what. `changes` never holds secrets. */
@Entity({ tableName: 'audit_logs' })
@Index({ properties: ['organization', 'createdAt'] })
@Index({ properties: ['organization', 'action', 'createdAt'] })
@Index({ properties: ['organization', 'resourceType', 'resourceId'] })
@Index({ properties: ['organization', 'actor', 'createdAt'] })
export class AuditLog {
  [OptionalProps]?: 'createdAt';

  @PrimaryKey({ type: 'uuid' })
  id: string = randomUUID();

  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  actor?: User;

  /** Kept so the row still says who acted after that user is deleted (or for failed logins). */
  @Property({ type: 'string', length: 320, nullable: true })
  actorEmail?: string;

  /**
   * The API key the actor acted through (`actor` is then its owner), or null for a login.
   * A copy, not a reference, so the entry still names the key after it (or its owner) is gone.
   */
  @Property({ type: 'json', nullable: true })
  actorApiKey?: AuditApiKey;

  @Property({ type: 'string', length: 100 })
  action!: string;

  @Property({ type: 'string', length: 64 })
  resourceType!: string;

  @Property({ type: 'string', length: 64, nullable: true })
  resourceId?: string;

  @Property({ type: 'json', nullable: true })
  changes?: Record<string, unknown>;

  @Property({ type: 'string', length: 64, nullable: true })
  ip?: string;

  @Property({ type: 'string', length: 64, nullable: true })
  requestId?: string;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  createdAt: Date = new Date();
}
