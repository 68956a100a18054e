import type { Middleware } from 'koa';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX } from '../lib/metrics';
import type { RateLimitRule } from '../lib/request-limits';
import { thrownStatus } from './middleware/thrown-status';

/** Request latencies from a cached read to a run's start (seconds). */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** NOTIFY → emitted is milliseconds unless the event is read back from the log. */
const FANOUT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/**
 * The API process's metrics (docs/metrics.md), registered on the registry its composition root
 * owns. Every label has a bounded set of values: a route's template, never its path; a rule's
 * name; never an id or anything a client wrote.
 */
export class ApiMetrics {
  readonly httpDuration: Histogram<'method' | 'route' | 'status'>;
  readonly realtimeConnections: Gauge<'kind'>;
  readonly rateLimited: Counter<'rule'>;
  readonly loginFailures: Counter;
  readonly eventFanout: Histogram;
  readonly runsStarted: Counter<'kind'>;

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.httpDuration = new Histogram({
      name: `${METRIC_PREFIX}http_request_duration_seconds`,
      help: 'HTTP requests answered by the API, by method, route template and status code.',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    });
    this.realtimeConnections = new Gauge({
      name: `${METRIC_PREFIX}realtime_connections`,
      help: 'Open realtime connections on this API instance: Socket.IO sockets and SSE streams.',
      labelNames: ['kind'],
      registers,
    });
    for (const kind of ['socket', 'sse']) this.realtimeConnections.set({ kind }, 0);
    this.rateLimited = new Counter({
      name: `${METRIC_PREFIX}rate_limited_total`,
      help: 'Requests refused with 429 by a rate limit rule (RATE_LIMITS), by rule.',
      labelNames: ['rule'],
      registers,
    });
    this.loginFailures = new Counter({
      name: `${METRIC_PREFIX}login_failures_total`,
      help: 'Logins refused for a wrong email or password (throttled attempts are not counted).',
      registers,
    });
    this.runsStarted = new Counter({
      name: `${METRIC_PREFIX}runs_started_total`,
      help: 'Runs that went RUNNING when the API created them (the others start in a worker), by kind.',
      labelNames: ['kind'],
      registers,
    });
    this.eventFanout = new Histogram({
      name: `${METRIC_PREFIX}event_fanout_seconds`,
      help: "Time from a fleet_events NOTIFY's arrival to its emission to this instance's sockets and streams.",
      buckets: FANOUT_BUCKETS,
      registers,
    });
  }

  /**
   * A run that took its agent's slot when the API created it starts here, not in a worker (its
   * workflow skips acquireSlot): the same counter as the worker's, so `sum` over the processes
   * counts every start once.
   */
  runStarted(execution: { status: string }): void {
    if (execution.status === 'RUNNING') this.runsStarted.inc({ kind: 'agent' });
  }

  /** Counts a 429 of `rule`. */
  rateLimitedBy(rule: RateLimitRule): void {
    this.rateLimited.inc({ rule });
  }

  /**
   * Times every request by its route's template (`/api/agents/:id`): the router leaves it on
   * the context. A request no route matched is `unmatched`, so a scanner's paths never become
   * label values. Outermost, so the status is the one sent, errors included.
   */
  requestTimer(): Middleware {
    return async (ctx, next) => {
      const end = this.httpDuration.startTimer();
      let status: number | undefined;
      try {
        await next();
      } catch (error) {
        status = thrownStatus(error);
        throw error;
      } finally {
        const template = (ctx as { _matchedRoute?: unknown })._matchedRoute;
        end({
          method: KNOWN_METHODS.has(ctx.method) ? ctx.method : 'OTHER',
          route: typeof template === 'string' ? template : 'unmatched',
          status: String(status ?? ctx.status),
        });
      }
    };
  }
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
