import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { tracer } from '../lib/tracing';

/**
 * The reference host's spans. A tools/call whose `params._meta` carries W3C `traceparent` (and
 * `tracestate`) joins the caller's trace as a server span (docs/host-protocol.md, "Trace
 * context"); the engine run and each command are its children, through the active context.
 * With tracing off (host/main.ts registers nothing) every span is the no-op one.
 */
export function serveTraced(
  tool: string,
  meta: Record<string, unknown> | undefined,
  serve: () => Promise<CallToolResult>,
): Promise<CallToolResult> {
  const carrier: Record<string, string> = {};
  for (const key of ['traceparent', 'tracestate']) {
    if (typeof meta?.[key] === 'string') carrier[key] = meta[key];
  }
  const parent = propagation.extract(ROOT_CONTEXT, carrier);
  const span = tracer().startSpan(
    `tools/call ${tool}`,
    { kind: SpanKind.SERVER, attributes: { 'mcp.method': 'tools/call', 'mcp.tool': tool } },
    parent,
  );
  if (!span.isRecording()) return serve();
  return context.with(trace.setSpan(parent, span), serve).then(
    (result) => endWith(span, result.isError === true ? 'tool_error' : 'ok', result),
    (error: unknown) => {
      endWith(span, 'error');
      throw error;
    },
  );
}

function endWith<T>(span: Span, status: 'ok' | 'tool_error' | 'error', value?: T): T {
  span.setAttribute('mcp.status', status);
  if (status !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
  return value as T;
}

/** A child span of the active one around `work`: the engine's run, one command. */
export async function inSpan<T>(name: string, attributes: Record<string, string | number | boolean>, work: () => Promise<T>): Promise<T> {
  const span = tracer().startSpan(name, { attributes });
  if (!span.isRecording()) return work();
  try {
    return await context.with(trace.setSpan(context.active(), span), work);
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw error;
  } finally {
    span.end();
  }
}
