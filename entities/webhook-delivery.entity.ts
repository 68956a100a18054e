import { Entity, Enum, Index, ManyToOne, Property, Unique } from '@mikro-orm/core';
import { BaseEntity } from './base.entity';
import { Organization } from './organization.entity';
import { Webhook } from './webhook.entity';

export enum WebhookDeliveryStatus {
  /** Waiting for its workflow's next attempt (or for a worker to start it). */
  PENDING = 'PENDING',
  DELIVERED = 'DELIVERED',
  /** Refused for good (a 4xx, a refused URL) or out of retries. */
  FAILED = 'FAILED',
}

/**
 * One event for one endpoint: the outbox row written with the change it reports, and the
 * record of its delivery. One row per (endpoint, event), so one event never gets two message
 * ids; its id is the message's `webhook-id` (`msg_<id>`) and its workflow's id.
 */
@Entity({ tableName: 'webhook_deliveries' })
@Unique({ properties: ['webhook', 'eventId'] })
@Index({ properties: ['webhook', 'createdAt'] })
export class WebhookDelivery extends BaseEntity<'status' | 'attempts'> {
  @ManyToOne(() => Webhook, { deleteRule: 'cascade' })
  webhook!: Webhook;

  @ManyToOne(() => Organization, { deleteRule: 'cascade' })
  organization!: Organization;

  /** The event's own id: the same event raised twice (a retried activity) is one row. */
  @Property({ type: 'string', length: 200 })
  eventId!: string;

  @Property({ type: 'string', length: 64 })
  eventType!: string;

  /** The JSON body sent, as signed: ids, status and reason only (docs/webhooks.md). */
  @Property({ type: 'json' })
  payload!: Record<string, unknown>;

  @Enum({ items: () => WebhookDeliveryStatus })
  status: WebhookDeliveryStatus = WebhookDeliveryStatus.PENDING;

  @Property({ type: 'integer' })
  attempts: number = 0;

  @Property({ type: 'integer', nullable: true })
  lastResponseCode?: number;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  lastAttemptAt?: Date;

  @Property({ type: 'text', nullable: true })
  lastError?: string;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  nextAttemptAt?: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  deliveredAt?: Date;

  /** Set once its workflow was started; rows without it are the outbox a worker drains. */
  @Index()
  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  workflowStartedAt?: Date;
}
