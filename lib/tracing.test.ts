import { context, trace } from '@opentelemetry/api';
import { startOtlpReceiver } from '../test/otlp-receiver';
import { ConfigError, loadTracingConfig } from './config';
import { startTracing, tracer } from './tracing';

describe('loadTracingConfig', () => {
  it('is off when no OTEL_* variable asks for traces', () => {
    expect(loadTracingConfig({})).toMatchObject({ enabled: false });
    expect(loadTracingConfig({ OTEL_SERVICE_NAME: 'x', OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' })).toMatchObject({ enabled: false });
  });

  it('turns on for an endpoint or OTEL_TRACES_EXPORTER=otlp, building the traces URL the way the OTLP spec does', () => {
    expect(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' })).toEqual({
      enabled: true,
      url: 'http://collector:4318/v1/traces',
      protocol: 'http/protobuf',
      serviceName: undefined,
    });
    expect(loadTracingConfig({ OTEL_TRACES_EXPORTER: 'otlp' })).toMatchObject({ enabled: true, url: 'http://localhost:4318/v1/traces' });
    expect(
      loadTracingConfig({
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://a:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://b:4318/custom',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json',
        OTEL_SERVICE_NAME: 'fleet-eu',
      }),
    ).toEqual({ enabled: true, url: 'http://b:4318/custom', protocol: 'http/json', serviceName: 'fleet-eu' });
  });

  it('stays off when OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true, whatever the endpoint', () => {
    expect(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_TRACES_EXPORTER: 'none' }).enabled).toBe(false);
    expect(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'TRUE' }).enabled).toBe(false);
  });

  it('refuses what it cannot export, naming the variable', () => {
    const problems = (env: NodeJS.ProcessEnv) => {
      try {
        loadTracingConfig(env);
        return [];
      } catch (error) {
        return (error as ConfigError).problems;
      }
    };
    expect(problems({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toEqual([
      expect.stringMatching(/^OTEL_EXPORTER_OTLP_PROTOCOL: .*grpc is not supported/),
    ]);
    expect(problems({ OTEL_TRACES_EXPORTER: 'zipkin' })).toEqual([expect.stringMatching(/^OTEL_TRACES_EXPORTER: /)]);
    expect(problems({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4318' })).toEqual([expect.stringMatching(/^OTEL_EXPORTER_OTLP_ENDPOINT: /)]);
  });
});

describe('startTracing', () => {
  it('registers nothing when off: spans come from the no-op tracer', async () => {
    const tracing = startTracing(loadTracingConfig({}), 'api');
    const span = tracer().startSpan('unseen');
    expect(span.isRecording()).toBe(false);
    expect(span.spanContext().traceId).toBe('00000000000000000000000000000000');
    span.end();
    await tracing.shutdown();
  });

  it('exports OTLP/HTTP JSON to the configured endpoint under the process service name, or OTEL_SERVICE_NAME', async () => {
    const receiver = await startOtlpReceiver();
    try {
      for (const [env, service] of [
        [{}, 'mcp-fleet-worker'],
        [{ OTEL_SERVICE_NAME: 'fleet-eu' }, 'fleet-eu'],
      ] as const) {
        const tracing = startTracing(
          loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', ...env }),
          'worker',
        );
        const parent = tracer().startSpan(`parent ${service}`);
        const child = tracer().startSpan('child', {}, trace.setSpan(context.active(), parent));
        child.end();
        parent.end();
        await tracing.shutdown();
        const parentSpan = receiver.spans.find((s) => s.name === `parent ${service}`);
        expect(parentSpan).toMatchObject({ service, traceId: parent.spanContext().traceId });
        expect(receiver.spans).toContainEqual(expect.objectContaining({ service, name: 'child', parentSpanId: parentSpan!.spanId }));
      }
      // Shut down, the process is back on the no-op tracer.
      expect(tracer().startSpan('after').isRecording()).toBe(false);
    } finally {
      await receiver.close();
    }
  });
});
