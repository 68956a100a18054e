/**
 * The model's text on its way to the client as `output` events. Token deltas are a few
 * characters each: one event per delta would fill the execution log with thousands of rows, so
 * the text goes out a line at a time, or after a short pause, whichever comes first.
 */
import type { HostEvent } from '../../lib/host-contract';

export interface OutputPacing {
  /** Text without a line end waits at most this long. */
  maxDelayMs: number;
  /** A buffer this long goes out even without a line end. */
  maxChars: number;
}

export const DEFAULT_PACING: OutputPacing = { maxDelayMs: 100, maxChars: 1024 };

export class TextOutput {
  private buffer = '';
  private timer?: NodeJS.Timeout;
  // Events leave one after the other, in the order of the text.
  private sending: Promise<void> = Promise.resolve();
  private failure?: unknown;

  constructor(
    private readonly emit: (event: HostEvent) => Promise<void>,
    private readonly pacing: OutputPacing = DEFAULT_PACING,
  ) {}

  /** Adds text; resolves once what is due has been sent (the stream waits for a slow client). */
  push(text: string): Promise<void> {
    this.buffer += text;
    const lineEnd = this.buffer.lastIndexOf('\n');
    if (this.buffer.length >= this.pacing.maxChars) return this.send(this.buffer.length);
    if (lineEnd >= 0) return this.send(lineEnd + 1);
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.send(this.buffer.length).catch(() => undefined);
    }, this.pacing.maxDelayMs);
    return this.sending;
  }

  /** Sends everything still buffered. */
  flush(): Promise<void> {
    return this.send(this.buffer.length);
  }

  /** Drops the pending timer (a run that ends in error sends nothing more). */
  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private send(chars: number): Promise<void> {
    if (chars > 0) {
      const text = this.buffer.slice(0, chars);
      this.buffer = this.buffer.slice(chars);
      if (!this.buffer) this.dispose();
      this.sending = this.sending
        .then(() => (this.failure === undefined ? this.emit({ type: 'output', text }) : undefined))
        .catch((error: unknown) => {
          this.failure ??= error;
        });
    }
    return this.sending.then(() => {
      if (this.failure !== undefined) throw this.failure;
    });
  }
}
