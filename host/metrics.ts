import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../lib/metrics';
import type { CommandRun } from './engines/engine';

/** How an execute_prompt run ended on this host. */
export type HostRunOutcome = 'ok' | 'error' | 'limit' | 'stopped';

/** A command's end: exit 0, another exit or signal, refused before it ran, timed out, or stopped by a sandbox limit. */
function commandOutcome(run: CommandRun): string {
  if (run.refused !== undefined) return 'refused';
  if (run.timedOut) return 'timeout';
  if (run.limit) return 'limit';
  return run.exitCode === 0 ? 'ok' : 'failed';
}

const COMMAND_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * The reference host's metrics (docs/metrics.md), on the registry host/main.ts owns and serves
 * on HOST_METRICS_PORT. Labels are the engine's name (a fixed list) and outcomes; never an
 * agent, a run or a command line.
 */
export class HostMetrics {
  readonly runs: Counter<'engine' | 'outcome'>;
  readonly runsInProgress: Gauge<'engine'>;
  readonly commandDuration: Histogram<'outcome'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.runs = new Counter({
      name: `${METRIC_PREFIX}host_runs_total`,
      help: 'execute_prompt runs this host finished, by engine and outcome (ok, error, limit, stopped).',
      labelNames: ['engine', 'outcome'],
      registers,
    });
    this.runsInProgress = new Gauge({
      name: `${METRIC_PREFIX}host_runs_in_progress`,
      help: 'execute_prompt runs this host is running now, by engine.',
      labelNames: ['engine'],
      registers,
    });
    this.commandDuration = new Histogram({
      name: `${METRIC_PREFIX}host_command_duration_seconds`,
      help: "Agents' commands on this host, by outcome (ok, failed, refused, timeout, limit).",
      labelNames: ['outcome'],
      buckets: COMMAND_BUCKETS,
      registers,
    });
  }

  /** Counts `run` as in progress on `engine` until it settles, then by the outcome it reports. */
  async timeRun<T>(engine: string, run: () => Promise<{ value: T; outcome: HostRunOutcome }>): Promise<T> {
    this.runsInProgress.inc({ engine });
    let outcome: HostRunOutcome = 'error';
    try {
      const settled = await run();
      outcome = settled.outcome;
      return settled.value;
    } finally {
      this.runsInProgress.dec({ engine });
      this.runs.inc({ engine, outcome });
    }
  }

  /** Wraps an EngineRun's runCommand so that each command's duration is observed. */
  timeCommands<A extends unknown[]>(runCommand: (...args: A) => Promise<CommandRun>): (...args: A) => Promise<CommandRun> {
    return async (...args) => {
      const started = performance.now();
      const result = await runCommand(...args);
      this.commandDuration.observe({ outcome: commandOutcome(result) }, (performance.now() - started) / 1000);
      return result;
    };
  }
}
