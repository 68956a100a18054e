import { Entity, Index, ManyToOne, Property } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { User } from './user.entity';

/**
 * An endpoint the organisation is told about events at, signed per Standard Webhooks. The
 * signing secret is sealed with the key ring like a server's master token; after a rotation
 * the previous one keeps signing beside it until `previousSecretExpiresAt`, so receivers can
 * switch without losing deliveries.
 */
@Entity({ tableName: 'webhooks' })
@Index({ properties: ['organization', 'enabled'] })
export class Webhook extends BaseEntity<'enabled'> {
  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  @Property({ type: 'string', length: 2048 })
  url!: string;

  /** Event types this endpoint receives (domain/webhooks/event-types.ts). */
  @Property({ type: 'json' })
  events!: string[];

  @Property({ type: 'boolean' })
  enabled: boolean = true;

  @Property({ type: 'text', nullable: true })
  description?: string;

  /** AES-256-GCM envelope of `whsec_…`; never presented after the answer that created it, never logged. */
  @Property({ type: 'text', hidden: true, lazy: true })
  secretCiphertext!: string;

  /** Key-ring entry that sealed the secret, so key rotation can find stale rows. */
  @Index()
  @Property({ type: 'string', length: 32 })
  secretKeyId!: string;

  /** The secret before the last rotation, still signing until its expiry. */
  @Property({ type: 'text', hidden: true, lazy: true, nullable: true })
  previousSecretCiphertext?: string;

  @Property({ type: 'string', length: 32, nullable: true })
  previousSecretKeyId?: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  previousSecretExpiresAt?: Date;

  /** Why the endpoint was switched off by the fleet (not by a person), e.g. a day of failed deliveries. */
  @Property({ type: 'text', nullable: true })
  disabledReason?: string;

  @ManyToOne(() => User, { nullable: true, deleteRule: 'set null' })
  createdBy?: User;
}
