import { Client } from 'pg';
import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import { EVENTS_CHANNEL, type AgentStatusEvent, type FleetEvent, type ServerStatusEvent, type SessionEndedEvent } from '../../domain/events';
import type { AgentExecutionPayload } from '../../domain/realtime-types';

/**
 * An event as local subscribers see it: execution events always carry their payload.
 * `hub:reconnected` says that notices may have been missed while the LISTEN connection was
 * down (execution events have been replayed; anything else must be checked again).
 */
export type HubEvent =
  | ServerStatusEvent
  | AgentStatusEvent
  | SessionEndedEvent
  | { type: 'hub:reconnected' }
  | { type: 'execution:event'; organizationId: string; agentId: string; executionId: string; seq: number; payload: AgentExecutionPayload };

type Listener = (event: HubEvent) => void;

const SEEN_LIMIT = 20_000;

/**
 * This API instance's end of the realtime path: one LISTEN connection on `fleet_events`,
 * reconnecting with backoff. Events too large for NOTIFY are read back from execution_events;
 * after a lost connection, the log since the last event is replayed, so nothing is missed.
 * Per execution, events reach listeners once, in seq order.
 */
export class RealtimeHub {
  private client?: Client;
  private closed = false;
  private retryMs = 250;
  private timer?: NodeJS.Timeout;
  private readonly listeners = new Set<Listener>();
  private readonly lastSeq = new Map<string, number>();
  private chain: Promise<void> = Promise.resolve();
  private lostAt = new Date();
  private connectedOnce = false;

  constructor(
    private readonly databaseUrl: string,
    private readonly orm: Orm,
    private readonly logger: Logger,
  ) {}

  /** Resolves once listening (the first time); later reconnects happen in the background. */
  async start(): Promise<void> {
    await this.connect();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.client?.end().catch(() => undefined);
    await this.chain;
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new Client({ connectionString: this.databaseUrl });
    const reconnecting = this.connectedOnce;
    // After a loss, notifications that arrive with the LISTEN's answer wait until the replay is
    // queued: the replay holds older events, and an execution's events go out in seq order.
    let held: string[] | undefined = reconnecting ? [] : undefined;
    client.on('notification', (message) => {
      if (message.channel !== EVENTS_CHANNEL || !message.payload) return;
      const raw = message.payload;
      if (held) held.push(raw);
      else this.enqueue(() => this.receive(raw));
    });
    client.on('error', (error) => {
      if (this.closed) return;
      this.lostAt = new Date();
      this.logger.warn({ err: error }, 'realtime LISTEN connection lost; reconnecting');
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.scheduleReconnect();
    });
    try {
      await client.connect();
      await client.query(`listen ${EVENTS_CHANNEL}`);
      this.client = client;
      this.retryMs = 250;
      if (reconnecting) this.enqueue(() => this.catchUp());
      for (const raw of held ?? []) this.enqueue(() => this.receive(raw));
      held = undefined;
      this.connectedOnce = true;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (!this.connectedOnce) throw error;
      this.logger.warn({ err: error }, 'realtime LISTEN unavailable; retrying');
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
  }

  /** Test hook and operational lever: drop the LISTEN connection as a network failure would. */
  simulateConnectionLoss(): void {
    this.client?.emit('error', new Error('simulated connection loss'));
  }

  private enqueue(task: () => Promise<void>): void {
    this.chain = this.chain.then(task).catch((error: unknown) => this.logger.error({ err: error }, 'realtime dispatch failed'));
  }

  private async receive(raw: string): Promise<void> {
    const event = JSON.parse(raw) as FleetEvent;
    if (event.type !== 'execution:event') return this.emit(event);
    if (event.payload) return this.dispatchExecution(event.payload, event.organizationId);
    const rows = await this.orm.em
      .getConnection()
      .execute<{ payload: AgentExecutionPayload }[]>('select payload from execution_events where execution_id = ? and seq = ?', [event.executionId, event.seq]);
    if (rows[0]) this.dispatchExecution(rows[0].payload, event.organizationId);
  }

  private async catchUp(): Promise<void> {
    // Events committed just before the loss may not have been delivered either.
    const since = new Date(this.lostAt.getTime() - 2000);
    const rows = await this.orm.em
      .getConnection()
      .execute<{ payload: AgentExecutionPayload; organization_id: string }[]>(
        'select payload, organization_id from execution_events where created_at >= ? order by created_at, seq limit 10000',
        [since],
      );
    this.logger.info({ replayed: rows.length }, 'realtime caught up after reconnect');
    for (const row of rows) this.dispatchExecution(row.payload, row.organization_id);
    this.emit({ type: 'hub:reconnected' });
  }

  private dispatchExecution(payload: AgentExecutionPayload, organizationId: string): void {
    const last = this.lastSeq.get(payload.executionId) ?? 0;
    if (payload.seq <= last) return;
    this.lastSeq.delete(payload.executionId);
    this.lastSeq.set(payload.executionId, payload.seq);
    if (this.lastSeq.size > SEEN_LIMIT) this.lastSeq.delete(this.lastSeq.keys().next().value!);
    this.emit({ type: 'execution:event', organizationId, agentId: payload.agentId, executionId: payload.executionId, seq: payload.seq, payload });
  }

  private emit(event: HubEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.logger.error({ err: error }, 'realtime listener failed');
      }
    }
  }
}
