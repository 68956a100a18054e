import { retryWhileDatabaseUnavailable } from '../../lib/database-unavailable';
import type { Logger } from '../../lib/logger';
import type { Orm } from '../../lib/orm';
import { PgListener } from '../../lib/pg-listener';
import type { ApiMetrics } from '../metrics';
import { EVENTS_CHANNEL, type AgentExecutionPayload, type ExecutionEventNotice, type FleetEvent } from '../../domain/events';
import { eventAt, eventsSince } from '../../domain/runs/execution-log';

/**
 * An event as local subscribers see it: execution events always carry their payload.
 * `hub:reconnected` says that notices may have been missed while the LISTEN connection was
 * down (execution events have been replayed; anything else must be checked again).
 */
export type HubEvent =
  | Exclude<FleetEvent, ExecutionEventNotice>
  | { type: 'hub:reconnected' }
  | { type: 'execution:event'; organizationId: string; agentId: string; executionId: string; seq: number; payload: AgentExecutionPayload };

type Listener = (event: HubEvent) => void;

const SEEN_LIMIT = 20_000;

/**
 * This API instance's end of the realtime path: one LISTEN connection on `fleet_events`
 * (lib/pg-listener.ts, which reconnects with backoff). Events too large for NOTIFY are read back
 * from the execution log; after a lost connection, the log since the loss is replayed before
 * the notices that arrived with the new LISTEN, so nothing is missed. Per execution, events
 * reach listeners once, in seq order.
 */
export class RealtimeHub {
  private readonly listener: PgListener;
  private readonly listeners = new Set<Listener>();
  private readonly lastSeq = new Map<string, number>();

  constructor(
    databaseUrl: string,
    private readonly orm: Orm,
    private readonly logger: Logger,
    private readonly metrics?: Pick<ApiMetrics, 'eventFanout'>,
  ) {
    this.listener = new PgListener({
      databaseUrl,
      channels: [EVENTS_CHANNEL],
      logger,
      name: 'realtime LISTEN',
      onNotification: (_channel, payload) => this.receive(payload),
      onReconnect: (lostAt) => this.catchUp(lostAt),
    });
  }

  /** Resolves once listening (the first time); later reconnects happen in the background. */
  start(): Promise<void> {
    return this.listener.start();
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): Promise<void> {
    return this.listener.close();
  }

  /** Test hook and operational lever: drop the LISTEN connection as a network failure would. */
  simulateConnectionLoss(): void {
    this.listener.simulateConnectionLoss();
  }

  private async receive(raw: string): Promise<void> {
    const fanout = this.metrics?.eventFanout.startTimer();
    const event = JSON.parse(raw) as FleetEvent;
    if (event.type !== 'execution:event') {
      this.emit(event);
      fanout?.();
      return;
    }
    // An event too large for NOTIFY is read back from the log first: that read is part of its fan-out.
    const payload = event.payload ?? (await retryWhileDatabaseUnavailable(() => eventAt(this.orm.em, event.executionId, event.seq)));
    if (payload) this.dispatchExecution(payload, event.organizationId);
    fanout?.();
  }

  private async catchUp(lostAt: Date): Promise<void> {
    // Events committed just before the loss may not have been delivered either. A database that
    // went away again right after the LISTEN came back is waited for: this replay is the only one.
    const rows = await retryWhileDatabaseUnavailable(() => eventsSince(this.orm.em, new Date(lostAt.getTime() - 2000)));
    this.logger.info({ replayed: rows.length }, 'realtime caught up after reconnect');
    for (const row of rows) this.dispatchExecution(row.payload, row.organizationId);
    this.emit({ type: 'hub:reconnected' });
  }

  private dispatchExecution(payload: AgentExecutionPayload, organizationId: string): void {
    const last = this.lastSeq.get(payload.executionId) ?? 0;
    if (payload.seq <= last) return;
    this.lastSeq.delete(payload.executionId);
    this.lastSeq.set(payload.executionId, payload.seq);
    if (this.lastSeq.size > SEEN_LIMIT) this.lastSeq.delete(this.lastSeq.keys().next().value!);
    this.emit({
      type: 'execution:event',
      organizationId,
      agentId: payload.agentId,
      executionId: payload.executionId,
      seq: payload.seq,
      payload,
    });
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
