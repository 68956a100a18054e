/**
 * When a running activity signals `progress` to its workflow. Each signal adds about four
 * events to the workflow's history, and a history has a hard limit, so a run that streams
 * for an hour must not signal at a fixed rate. The gap after each signal grows (500 ms, 1 s,
 * 2 s, ... up to 60 s): a short run is watched closely, and an hour-long one costs about
 * seventy signals whatever it emits. The log in PostgreSQL has every event at once; the
 * signal only keeps the `progress` query and the Web UI summary roughly current.
 */

export interface ThrottleClock {
  now(): number;
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

export const systemClock: ThrottleClock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => setTimeout(fn, ms),
  clearTimer: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

export interface GrowingInterval {
  firstMs: number;
  factor: number;
  maxMs: number;
}

export const PROGRESS_SIGNAL_INTERVAL: GrowingInterval = { firstMs: 500, factor: 2, maxMs: 60_000 };

/**
 * Calls `send` for changes: the first at once, later ones no sooner than the current gap after
 * the previous call (changes in between are taken together), and a last one from `finish()`
 * when something changed since. `send` reads the state when it runs, so it always carries the
 * newest.
 */
export class GrowingThrottle {
  private earliest = Number.NEGATIVE_INFINITY;
  private gap: number;
  private timer: unknown;
  private dirty = false;
  private finished = false;
  /** How many times `send` ran. */
  sent = 0;

  constructor(
    private readonly send: () => Promise<void> | void,
    private readonly interval: GrowingInterval = PROGRESS_SIGNAL_INTERVAL,
    private readonly clock: ThrottleClock = systemClock,
  ) {
    this.gap = interval.firstMs;
  }

  changed(): void {
    if (this.finished) return;
    this.dirty = true;
    if (this.timer !== undefined) return;
    const wait = this.earliest - this.clock.now();
    if (wait <= 0) void this.fire();
    else
      this.timer = this.clock.setTimer(() => {
        this.timer = undefined;
        void this.fire();
      }, wait);
  }

  /** Stops the timer and sends what changed since the last call, if anything; resolves when sent. */
  async finish(): Promise<void> {
    this.finished = true;
    if (this.timer !== undefined) this.clock.clearTimer(this.timer);
    this.timer = undefined;
    if (this.dirty) await this.fire();
  }

  private fire(): Promise<void> | void {
    this.dirty = false;
    this.sent++;
    this.earliest = this.clock.now() + this.gap;
    this.gap = Math.min(this.gap * this.interval.factor, this.interval.maxMs);
    return this.send();
  }
}
