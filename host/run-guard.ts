/**
 * The stop signal and limits of one execute_prompt run. The signal aborts on the client's
 * cancel, the host's shutdown, or a limit: past the wall time, or once the run's output would
 * pass its byte limit (what fits is still sent). Whatever the engine does, a run past a limit
 * ends with the limit's error, not with whatever the engine made of being stopped.
 */
import type { EngineRun } from './engines/engine';

export type Limits = EngineRun['limits'];

export class RunGuard {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  /** Which limit stopped the run, if one did. */
  limitHit?: 'output' | 'wall-time';
  private outputBytes = 0;
  private timer?: NodeJS.Timeout;
  /** Wall time left when the clock last (re)started, and when that was. */
  private wallLeftMs: number;
  private clockStartedAt = Date.now();
  private pauses = 0;
  private disposed = false;
  private readonly unlink: (() => void)[] = [];

  /**
   * `sources` abort the run with their own reason (an Error) or the given one. Hand-linked
   * rather than AbortSignal.any() so that nothing stays attached to the host-lifetime shutdown
   * signal once the run is over.
   */
  constructor(
    readonly limits: Limits,
    sources: { signal: AbortSignal; reason: () => Error }[],
  ) {
    for (const { signal, reason } of sources) {
      const listener = () => this.controller.abort(reason());
      if (signal.aborted) listener();
      else signal.addEventListener('abort', listener, { once: true });
      this.unlink.push(() => signal.removeEventListener('abort', listener));
    }
    this.wallLeftMs = limits.wallTimeMs;
    this.startClock();
  }

  /** Stops the wall-time clock (the run waits for a person's answer); pauses nest. */
  pause(): void {
    if (this.pauses++ > 0) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.wallLeftMs -= Date.now() - this.clockStartedAt;
  }

  resume(): void {
    if (this.pauses === 0 || --this.pauses > 0 || this.disposed) return;
    this.startClock();
  }

  private startClock(): void {
    this.clockStartedAt = Date.now();
    if (Number.isFinite(this.wallLeftMs)) this.timer = setTimeout(() => this.hit('wall-time'), Math.max(0, this.wallLeftMs));
  }

  /** The error of the limit that stopped the run. */
  limitError(): Error | undefined {
    if (this.limitHit === 'output')
      return new Error(`output limit reached: a run may print at most ${this.limits.outputBytes} bytes; it was stopped`);
    if (this.limitHit === 'wall-time')
      return new Error(`wall-time limit reached: a run may take at most ${formatMs(this.limits.wallTimeMs)}; it was stopped`);
    return undefined;
  }

  /** The part of `text` the run may still print (all of it, or what fits before the limit, which then stops the run). */
  takeOutput(text: string): string {
    const bytes = Buffer.byteLength(text);
    const left = this.limits.outputBytes - this.outputBytes;
    if (bytes <= left) {
      this.outputBytes += bytes;
      return text;
    }
    // A multi-byte character cut in half is dropped rather than sent broken.
    const fits = Buffer.from(text)
      .subarray(0, Math.max(0, left))
      .toString('utf8')
      .replace(/\uFFFD$/, '');
    this.outputBytes += Buffer.byteLength(fits);
    this.hit('output');
    return fits;
  }

  dispose(): void {
    this.disposed = true;
    clearTimeout(this.timer);
    for (const unlink of this.unlink.splice(0)) unlink();
  }

  private hit(limit: 'output' | 'wall-time'): void {
    if (this.signal.aborted) return;
    this.limitHit = limit;
    this.controller.abort(this.limitError());
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
