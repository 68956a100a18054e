import { z } from 'zod';

/**
 * Shared by the control plane (through lib/config.ts) and the reference agent host, which reads
 * OTEL_* the same way but has no Config of its own: this module imports nothing of the project.
 */

export class TracingConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'TracingConfigError';
  }
}

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

/**
 * OpenTelemetry's standard variables, the ones whose meaning this project decides: whether
 * traces are exported, where, in which encoding and under which service name. The exporter
 * itself still reads the variables that only shape the request (OTEL_EXPORTER_OTLP_HEADERS,
 * _TIMEOUT, _COMPRESSION, their _TRACES_ forms) and the tracer provider reads
 * OTEL_TRACES_SAMPLER: that is the OpenTelemetry SDK's documented behaviour, and copying it
 * here would only add a second reading that could disagree (docs/tracing.md).
 */
const tracingEnvSchema = z.object({
  OTEL_SDK_DISABLED: optionalString,
  OTEL_TRACES_EXPORTER: optionalString.pipe(z.enum(['otlp', 'none'], 'only otlp and none are supported').optional()),
  OTEL_EXPORTER_OTLP_ENDPOINT: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: optionalString.pipe(z.url({ protocol: /^https?$/ }).optional()),
  OTEL_EXPORTER_OTLP_PROTOCOL: optionalString.pipe(
    z.enum(['http/protobuf', 'http/json'], 'http/protobuf or http/json (grpc is not supported)').optional(),
  ),
  OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: optionalString.pipe(
    z.enum(['http/protobuf', 'http/json'], 'http/protobuf or http/json (grpc is not supported)').optional(),
  ),
  OTEL_SERVICE_NAME: optionalString,
});

export interface TracingConfig {
  /** Off unless an OTLP endpoint or OTEL_TRACES_EXPORTER=otlp is set; OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none win. */
  enabled: boolean;
  /** The full URL spans are posted to (the signal path included, as the OTLP spec builds it). */
  url: string;
  protocol: 'http/protobuf' | 'http/json';
  /** OTEL_SERVICE_NAME; each process uses its own name (mcp-fleet-api, -worker, -host) when unset. */
  serviceName?: string;
}

const DEFAULT_OTLP_ENDPOINT = 'http://localhost:4318';

/** Reads the OTEL_* variables: lib/config.ts for the API and the worker, host/main.ts for the agent host. */
export function loadTracingConfig(env: NodeJS.ProcessEnv): TracingConfig {
  const parsed = tracingEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new TracingConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || 'env'}: ${i.message}`));
  }
  const e = parsed.data;
  // The OTLP exporter spec: a signal-specific endpoint is used as is; the general one is a base
  // to which the signal's path is appended.
  const url =
    e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? `${(e.OTEL_EXPORTER_OTLP_ENDPOINT ?? DEFAULT_OTLP_ENDPOINT).replace(/\/+$/, '')}/v1/traces`;
  const endpointSet = e.OTEL_EXPORTER_OTLP_ENDPOINT !== undefined || e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT !== undefined;
  const disabled = e.OTEL_SDK_DISABLED?.toLowerCase() === 'true' || e.OTEL_TRACES_EXPORTER === 'none';
  return {
    enabled: !disabled && (e.OTEL_TRACES_EXPORTER === 'otlp' || endpointSet),
    url,
    protocol: e.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? e.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf',
    serviceName: e.OTEL_SERVICE_NAME,
  };
}
