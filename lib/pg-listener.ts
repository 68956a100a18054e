import { Client } from 'pg';
import type { Logger } from './logger';

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 10_000;
const CONNECT_TIMEOUT_MS = 10_000;

export interface PgListenerOptions {
  databaseUrl: string;
  channels: readonly string[];
  logger: Logger;
  /** Names the connection in log lines ("realtime LISTEN", "control channel"). */
  name: string;
  /** Each notification with a payload, one at a time in arrival order (an async handler is awaited). */
  onNotification(channel: string, payload: string): void | Promise<void>;
  /**
   * After a lost connection is back and listening: `lostAt` is when it was lost, so the caller
   * can catch up on what was sent meanwhile. Runs before the notifications that arrived with
   * the new LISTEN's answer are delivered.
   */
  onReconnect?(lostAt: Date): void | Promise<void>;
}

/**
 * One PostgreSQL connection that LISTENs on some channels and reconnects with backoff
 * (250 ms doubling to 10 s) when it is lost. Notifications are not replayed by PostgreSQL, so a
 * caller that must not miss any catches up in `onReconnect`.
 */
export class PgListener {
  private client?: Client;
  private closed = false;
  private retryMs = FIRST_RETRY_MS;
  private timer?: NodeJS.Timeout;
  private chain: Promise<void> = Promise.resolve();
  private lostAt = new Date();
  private connectedOnce = false;

  constructor(private readonly options: PgListenerOptions) {}

  /** Resolves once listening; a first connection that fails rejects. Later losses reconnect in the background. */
  async start(): Promise<void> {
    await this.connect();
  }

  /** Stops reconnecting, ends the connection and waits for the deliveries under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.client?.end().catch(() => undefined);
    await this.chain;
  }

  /** Test hook and operational lever: drop the connection as a network failure would. */
  simulateConnectionLoss(): void {
    this.client?.emit('error', new Error('simulated connection loss'));
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const { databaseUrl, channels, logger, name } = this.options;
    // A connect that never completes (a host that drops packets) would stop the retries: it fails
    // after CONNECT_TIMEOUT_MS instead, and TCP keep-alive notices a connection that went silent.
    const client = new Client({ connectionString: databaseUrl, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, keepAlive: true });
    const reconnecting = this.connectedOnce;
    // After a loss, notifications that arrive with the LISTEN's answer wait until the catch-up
    // is queued: it covers older messages, and the caller may rely on their order.
    let held: [string, string][] | undefined = reconnecting ? [] : undefined;
    // Once its connection has failed, a client delivers nothing more: what it might still
    // read arrives before the catch-up and out of order; the catch-up covers it.
    let failed = false;
    client.on('notification', (message) => {
      if (failed || !channels.includes(message.channel) || !message.payload) return;
      const received: [string, string] = [message.channel, message.payload];
      if (held) held.push(received);
      else this.deliver(received);
    });
    client.on('error', (error) => {
      failed = true;
      if (this.closed) return;
      this.lostAt = new Date();
      logger.warn({ err: error }, `${name} connection lost; reconnecting`);
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      this.scheduleReconnect();
    });
    try {
      await client.connect();
      for (const channel of channels) await client.query(`listen ${client.escapeIdentifier(channel)}`);
      this.client = client;
      this.retryMs = FIRST_RETRY_MS;
      const { onReconnect } = this.options;
      if (reconnecting && onReconnect) {
        const lostAt = this.lostAt;
        this.enqueue(() => onReconnect(lostAt));
      }
      for (const received of held ?? []) this.deliver(received);
      held = undefined;
      this.connectedOnce = true;
    } catch (error) {
      await client.end().catch(() => undefined);
      if (!this.connectedOnce) throw error;
      logger.warn({ err: error }, `${name} unavailable; retrying`);
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.closed || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, MAX_RETRY_MS);
  }

  private deliver([channel, payload]: [string, string]): void {
    this.enqueue(() => this.options.onNotification(channel, payload));
  }

  private enqueue(task: () => void | Promise<void>): void {
    this.chain = this.chain
      .then(task)
      .catch((error: unknown) => this.options.logger.error({ err: error }, `${this.options.name}: a notification handler failed`));
  }
}
