/**
 * What every history recorder shares: a stack of its own (the test harness's global setup: a real
 * PostgreSQL and Temporal dev server in a temp dir, migrated, with the workflow bundle) and the
 * writing of a workflow's `History` protobuf, encoded as test/workflow-replay.test.ts decodes it.
 * It imports only what the code before the `run-waiting-signal` patch had too, so the recorder of
 * that code (scripts/histories/before-run-waiting-signal.ts) runs on a checkout of that commit.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import globalSetup from '../../test/global-setup';
import globalTeardown from '../../test/global-teardown';

/** The histories of the current code; those of the code before a patch live beside it, in before-<patch>/. */
export const HISTORIES_DIR = path.join(__dirname, '..', '..', 'test', 'histories', 'current');

/** Committed histories stay small: a bigger one means a scenario grew (more steps, more progress signals). */
export const MAX_HISTORY_BYTES = 50 * 1024;

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
export const EventType = temporal.api.enums.v1.EventType;

/** Runs `record` against a fresh stack, and takes the stack down whatever happens. */
export async function withStack<T>(record: () => Promise<T>): Promise<T> {
  await globalSetup();
  try {
    return await record();
  } finally {
    await globalTeardown();
  }
}

export interface Recorder {
  /** Names written so far, with their sizes. */
  written: Array<{ name: string; bytes: number }>;
  /** Writes the workflow's history once it has closed. */
  closed(workflowId: string, name: string): Promise<void>;
  /** Writes the workflow's history as it stands once `cut` holds for its events (a run in flight, as an upgraded worker finds it). */
  inFlight(workflowId: string, name: string, cut: (events: HistoryEvent[]) => boolean): Promise<void>;
}

/** Polls the history until `ready` holds (a loaded machine may take a while): a condition, not a sleep. */
async function historyWhen(client: Client, workflowId: string, ready: (events: HistoryEvent[]) => boolean, timeoutMs = 120_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    if (ready(history.events ?? [])) return history;
    if (Date.now() > deadline) throw new Error(`the history of ${workflowId} never reached the expected point`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const CLOSING = new Set<number>([
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
  EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
]);

/** `fresh`: a whole recording, which first removes the directory's histories (a renamed scenario leaves none behind). */
export function recorder(client: Client, only: (name: string) => boolean, { dir = HISTORIES_DIR, fresh = false } = {}): Recorder {
  mkdirSync(dir, { recursive: true });
  if (fresh) for (const file of readdirSync(dir)) if (file.endsWith('.history.bin')) rmSync(path.join(dir, file));
  const written: Recorder['written'] = [];
  const write = (name: string, history: temporal.api.history.v1.IHistory) => {
    if (!only(name)) return;
    const bytes = temporal.api.history.v1.History.encode(history).finish();
    if (bytes.length > MAX_HISTORY_BYTES)
      throw new Error(`${name}: ${bytes.length} bytes, over ${MAX_HISTORY_BYTES}: make the scenario smaller`);
    writeFileSync(path.join(dir, `${name}.history.bin`), bytes);
    written.push({ name, bytes: bytes.length });
    process.stdout.write(`  ${name}.history.bin (${bytes.length} bytes)\n`);
  };
  return {
    written,
    async closed(workflowId, name) {
      write(name, await historyWhen(client, workflowId, (events) => CLOSING.has(events.at(-1)?.eventType ?? 0)));
    },
    async inFlight(workflowId, name, cut) {
      // Cut after a workflow task that completed, as a worker picking the run up would find it.
      write(
        name,
        await historyWhen(
          client,
          workflowId,
          (events) => events.at(-1)?.eventType !== undefined && cut(events) && !CLOSING.has(events.at(-1)!.eventType!),
        ),
      );
    },
  };
}

/** True when an event of `later` type comes after the last event of `earlier` type. */
export function after(events: HistoryEvent[], earlier: number, later: number): boolean {
  const last = events.findLastIndex((e) => e.eventType === earlier);
  return last >= 0 && events.slice(last + 1).some((e) => e.eventType === later);
}
