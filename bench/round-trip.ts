/**
 * A round trip through the platform against the same work done directly, timed alternately
 * (after a warm-up of each), so machine noise hits both series alike. Passes when the
 * platform's p50 is at most `targetAddedMs` above the baseline's.
 */

export function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

export interface RoundTripComparison {
  /** First line of the report, e.g. `server-test bench`. */
  name: string;
  count: number;
  warmup: number;
  platform: { label: string; run: () => Promise<void> };
  baseline: { label: string; run: () => Promise<void> };
  /** What the difference is, e.g. `workflow round trip adds`. */
  adds: string;
  targetAddedMs: number;
}

export async function compareRoundTrips(c: RoundTripComparison): Promise<{ pass: boolean }> {
  for (let i = 0; i < c.warmup; i++) {
    await c.platform.run();
    await c.baseline.run();
  }
  const platform: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < c.count; i++) {
    platform.push(await timed(c.platform.run));
    baseline.push(await timed(c.baseline.run));
  }
  const added50 = percentile(platform, 50) - percentile(baseline, 50);
  const width = Math.max(c.platform.label.length, c.baseline.label.length) + 2;
  const line = (name: string, xs: number[]) =>
    `${name.padEnd(width)} p50 ${percentile(xs, 50).toFixed(1).padStart(6)} ms   p95 ${percentile(xs, 95).toFixed(1).padStart(6)} ms`;
  process.stdout.write(
    [
      `${c.name}: ${c.count} each, interleaved`,
      line(c.platform.label, platform),
      line(c.baseline.label, baseline),
      `${c.adds} ${added50.toFixed(1)} ms at p50 (target <= ${c.targetAddedMs} ms); ratio p50 ${(percentile(platform, 50) / percentile(baseline, 50)).toFixed(2)}`,
      '',
    ].join('\n'),
  );
  return { pass: added50 <= c.targetAddedMs };
}
