import { GrowingThrottle, PROGRESS_SIGNAL_INTERVAL, type ThrottleClock } from './progress-throttle';

/** A clock whose time moves only when the test says so, firing due timers in order. */
function virtualClock() {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let nextId = 1;
  const clock: ThrottleClock = {
    now: () => now,
    setTimer: (fn, ms) => {
      const id = nextId++;
      timers.set(id, { at: now + ms, fn });
      return id;
    },
    clearTimer: (id) => timers.delete(id as number),
  };
  const advanceTo = (to: number) => {
    for (;;) {
      const due = [...timers.entries()].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      timers.delete(due[0]);
      now = due[1].at;
      due[1].fn();
    }
    now = to;
  };
  return { clock, advanceTo, pending: () => timers.size };
}

describe('progress signals on a growing interval', () => {
  it('signals the first change at once, then no sooner than 0.5 s, 1 s, 2 s … 60 s after the previous signal', () => {
    const { clock, advanceTo } = virtualClock();
    const sentAt: number[] = [];
    const throttle = new GrowingThrottle(() => void sentAt.push(clock.now()), PROGRESS_SIGNAL_INTERVAL, clock);
    for (let t = 0; t <= 600_000; t += 100) {
      advanceTo(t);
      throttle.changed();
    }
    const gaps = sentAt.slice(1).map((at, i) => at - sentAt[i]!);
    expect(sentAt[0]).toBe(0);
    expect(gaps.slice(0, 8)).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000]);
    expect(new Set(gaps.slice(7))).toEqual(new Set([60_000]));
  });

  it('sends at most about seventy signals for 10,000 events over an hour, the last one with the final state', async () => {
    const { clock, advanceTo, pending } = virtualClock();
    const state = { seq: 0 };
    const delivered: number[] = [];
    const throttle = new GrowingThrottle(() => void delivered.push(state.seq), PROGRESS_SIGNAL_INTERVAL, clock);
    const events = 10_000;
    const hourMs = 3_600_000;
    for (let i = 1; i <= events; i++) {
      advanceTo(Math.round((i * hourMs) / events));
      state.seq = i;
      throttle.changed();
    }
    await throttle.finish();
    console.log(
      `progress throttle: ${events} events over a virtual hour → ${throttle.sent} signals (a fixed 500 ms throttle: ${Math.min(events, hourMs / 500)})`,
    );
    expect(throttle.sent).toBeLessThanOrEqual(70);
    expect(throttle.sent).toBeGreaterThan(60);
    expect(delivered.at(-1)).toBe(events);
    expect(pending()).toBe(0);
  });

  it('sends nothing at the end when nothing changed since the last signal, and nothing after finish', async () => {
    const { clock, advanceTo, pending } = virtualClock();
    let sent = 0;
    const throttle = new GrowingThrottle(() => void sent++, PROGRESS_SIGNAL_INTERVAL, clock);
    await throttle.finish();
    expect(sent).toBe(0);
    const other = new GrowingThrottle(() => void sent++, PROGRESS_SIGNAL_INTERVAL, clock);
    other.changed();
    advanceTo(10_000);
    await other.finish();
    expect(sent).toBe(1);
    other.changed();
    advanceTo(20_000);
    expect(sent).toBe(1);
    expect(pending()).toBe(0);
  });
});
