import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter as OTLPJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OTLPProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { Resource } from '@opentelemetry/resources';
import { BatchSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { TracingConfig } from './tracing-config';

/** The name each process reports as `service.name` unless OTEL_SERVICE_NAME says otherwise. */
export const SERVICE_NAMES = { api: 'mcp-fleet-api', worker: 'mcp-fleet-worker', host: 'mcp-fleet-host' } as const;

/** The instrumentation scope of the spans this project makes itself. */
export const TRACER_NAME = 'mcp-fleet';

export type Tracing =
  | { enabled: false; shutdown(): Promise<void> }
  | {
      enabled: true;
      resource: Resource;
      /** The processor the provider exports through; the worker hands it to the workflow span sink too. */
      spanProcessor: SpanProcessor;
      /** Exports what is buffered, then stops. */
      shutdown(): Promise<void>;
    };

/** Tracing as it is unless OTEL_* variables ask for it: nothing registered. */
export const TRACING_OFF: Tracing = Object.freeze({ enabled: false, shutdown: async () => {} });

/** The tracer for this project's own spans: the API's no-op tracer until startTracing registers a provider. */
export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

function exporterFor(config: TracingConfig): SpanExporter {
  return config.protocol === 'http/json' ? new OTLPJsonTraceExporter({ url: config.url }) : new OTLPProtoTraceExporter({ url: config.url });
}

/**
 * Registers a global tracer provider exporting OTLP when tracing is configured, and nothing at
 * all when it is not: then every span the code and the Temporal interceptors ask for comes from
 * @opentelemetry/api's no-op tracer, which allocates nothing and exports nothing. The provider
 * also installs the AsyncLocalStorage context manager and the W3C trace-context propagator.
 */
export function startTracing(config: TracingConfig, service: keyof typeof SERVICE_NAMES): Tracing {
  if (!config.enabled) return TRACING_OFF;
  const resource = Resource.default().merge(new Resource({ [ATTR_SERVICE_NAME]: config.serviceName ?? SERVICE_NAMES[service] }));
  const spanProcessor = new BatchSpanProcessor(exporterFor(config));
  const provider = new NodeTracerProvider({ resource, spanProcessors: [spanProcessor] });
  provider.register();
  return {
    enabled: true,
    resource,
    spanProcessor,
    shutdown: async () => {
      try {
        await provider.shutdown();
      } finally {
        // Even when the last export failed: a later startTracing in the same process (tests) registers afresh.
        trace.disable();
        context.disable();
        propagation.disable();
      }
    },
  };
}
