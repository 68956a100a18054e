import { ApplicationFailure, Context } from '@temporalio/activity';
import { isDatabaseUnavailable, retryWhileDatabaseUnavailable } from '../lib/database-unavailable';

/** What a short activity's database step fails with once PostgreSQL stayed away for longer than it waits. */
export const DATABASE_UNAVAILABLE = 'DatabaseUnavailable';

/**
 * The database steps of one attempt of a short activity (a server check, an agent's
 * validation, a tool change), which wait for an unavailable PostgreSQL as a run's do
 * (`retryWhileDatabaseUnavailable`) instead of failing the attempt: the activity's retry
 * policy, a few attempts over a few seconds, would give up within a restart. Every step of
 * the attempt shares one budget, DATABASE_OUTAGE_GRACE_MS from the attempt's start, but at
 * most half the activity's start-to-close timeout, so that what follows the wait (the MCP
 * call, the record) still fits before Temporal would start a second attempt beside this one.
 * Past it the step fails for good (non-retryable `DatabaseUnavailable`), saying what it was
 * doing. A regular activity beats meanwhile, carrying `details()` (by default the previous
 * attempt's), so a heartbeat timeout does not end it and a retry keeps what it reads back
 * from them; a cancel stops the wait. Only unavailability is waited for: a statement that
 * fails otherwise, a refusal and an MCP failure keep their own paths.
 */
export class DatabaseWait {
  private readonly budgetMs: number;
  private readonly giveUpAt: number;
  private readonly clamped: boolean;

  constructor(graceMs: number, details?: () => unknown) {
    const ctx = Context.current();
    const half = Math.floor(ctx.info.startToCloseTimeoutMs / 2);
    this.clamped = half < graceMs;
    this.budgetMs = Math.min(graceMs, half);
    this.giveUpAt = Date.now() + this.budgetMs;
    const previous = ctx.info.heartbeatDetails as unknown;
    this.details = details ?? (() => previous);
  }

  private readonly details: () => unknown;

  /** Runs `step` (which must be safe to run again after a failure that may have followed its commit) until it gets through or the budget is spent. */
  async run<T>(step: () => Promise<T>, doing: string): Promise<T> {
    const ctx = Context.current();
    // Local activities cannot beat: their workflow task is kept alive by the SDK instead.
    const beating = ctx.info.isLocal ? undefined : setInterval(() => ctx.heartbeat(this.details()), 1000);
    try {
      return await retryWhileDatabaseUnavailable(step, this.giveUpAt - Date.now(), ctx.cancellationSignal);
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      const limit = this.clamped ? "half the activity's start-to-close timeout" : 'DATABASE_OUTAGE_GRACE_MS';
      throw ApplicationFailure.nonRetryable(
        `PostgreSQL was unavailable for more than ${Math.round(this.budgetMs / 1000)} s (${limit}) ${doing}`,
        DATABASE_UNAVAILABLE,
      );
    } finally {
      if (beating) clearInterval(beating);
    }
  }
}
