import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { Middleware } from 'koa';
import { tracer } from '../../lib/tracing';
import type { AppContext } from '../context';
import { thrownStatus } from './thrown-status';

/**
 * The request's server span, the root of its trace unless the caller sent a W3C `traceparent`.
 * Named and labelled as OpenTelemetry's HTTP conventions say: `GET /api/agents/:id`, the route
 * template (never the path, whose ids would make every span name unique), method, route and
 * status. Outermost, so everything the request does (the request log line included) is inside
 * it. With tracing off the span is the no-op one and nothing is recorded.
 */
export function traceRequests(): Middleware<AppContext['state'], AppContext> {
  return async (ctx, next) => {
    const parent = propagation.extract(context.active(), ctx.headers);
    const span = tracer().startSpan(ctx.method, { kind: SpanKind.SERVER, attributes: { 'http.request.method': ctx.method } }, parent);
    if (!span.isRecording()) return next();
    let status: number | undefined;
    try {
      await context.with(trace.setSpan(parent, span), next);
    } catch (error) {
      status = thrownStatus(error);
      throw error;
    } finally {
      status ??= ctx.status;
      const route = (ctx as { _matchedRoute?: unknown })._matchedRoute;
      if (typeof route === 'string') {
        span.updateName(`${ctx.method} ${route}`);
        span.setAttribute('http.route', route);
      }
      span.setAttribute('http.response.status_code', status);
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
    }
  };
}
