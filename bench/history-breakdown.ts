/**
 * Where a round trip through a workflow spends its time: the bench's own clock at the request
 * and at the answer, and between them the times Temporal wrote in the workflow's history (the
 * dev server runs on the same machine, so one clock). Printed as the p50 of each step, so a
 * bench that misses its target shows which hop to work on.
 */
import type { Client } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { percentile } from './round-trip';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** One timed request and the workflow that served it. */
export interface TimedRun {
  workflowId: string;
  /** `Date.now()` before the request went out, and once its answer was in. */
  sentAt: number;
  answeredAt: number;
}

/** The instants of one run, in order, each named for the step that ends there; undefined: not in this history. */
export type RunPoints = (events: HistoryEvent[]) => Array<[step: string, at: number | undefined]>;

export function eventMs(event: HistoryEvent | undefined): number | undefined {
  const time = event?.eventTime;
  if (!time) return undefined;
  return Number(time.seconds) * 1000 + Math.floor((time.nanos ?? 0) / 1e6);
}

export function firstEvent(events: HistoryEvent[], type: keyof typeof EVENT): HistoryEvent | undefined {
  return events.find((e) => e.eventType === EVENT[type]);
}

export function lastEvent(events: HistoryEvent[], type: keyof typeof EVENT): HistoryEvent | undefined {
  return events.findLast((e) => e.eventType === EVENT[type]);
}

/** temporal.api.enums.v1.EventType values used here (numbers, so this file loads no proto module). */
export const EVENT = {
  WorkflowExecutionStarted: 1,
  WorkflowExecutionCompleted: 2,
  WorkflowTaskScheduled: 5,
  WorkflowTaskStarted: 6,
  WorkflowTaskCompleted: 7,
  ActivityTaskScheduled: 10,
  ActivityTaskStarted: 11,
  ActivityTaskCompleted: 12,
  MarkerRecorded: 25,
  StartChildWorkflowExecutionInitiated: 29,
  ChildWorkflowExecutionStarted: 31,
  WorkflowExecutionUpdateAccepted: 41,
} as const;

/** When core scheduled the local activity a marker records (its `original_schedule_time`, wall clock). */
export function localActivityScheduledMs(marker: HistoryEvent | undefined): number | undefined {
  const payload = marker?.markerRecordedEventAttributes?.details?.data?.payloads?.[0]?.data;
  if (!payload) return undefined;
  const data = JSON.parse(Buffer.from(payload).toString('utf8')) as { original_schedule_time?: { seconds: number; nanos: number } };
  const at = data.original_schedule_time;
  return at ? at.seconds * 1000 + Math.floor(at.nanos / 1e6) : undefined;
}

/**
 * Reads each run's history and prints the p50 (and p90) of every step from the request to
 * the answer: `request → <first point>`, `<point> → <next point>`, …, `<last point> → answer`.
 */
export async function printBreakdown(client: Client, title: string, runs: TimedRun[], points: RunPoints): Promise<void> {
  const steps = new Map<string, number[]>();
  for (const run of runs) {
    const events = (await client.workflow.getHandle(run.workflowId).fetchHistory()).events ?? [];
    let label = 'request';
    let previous = run.sentAt;
    for (const [step, at] of [...points(events), ['answer', run.answeredAt] as [string, number]]) {
      if (at === undefined) continue;
      const name = `${label} → ${step}`;
      steps.set(name, [...(steps.get(name) ?? []), at - previous]);
      label = step;
      previous = at;
    }
  }
  const width = Math.max(...[...steps.keys()].map((k) => k.length)) + 2;
  process.stdout.write(
    [
      `${title} (${runs.length} runs, from the bench's clock and the workflow histories):`,
      ...[...steps].map(
        ([name, xs]) =>
          `  ${name.padEnd(width)} p50 ${percentile(xs, 50).toFixed(0).padStart(4)} ms   p90 ${percentile(xs, 90).toFixed(0).padStart(4)} ms`,
      ),
      '',
    ].join('\n'),
  );
}
