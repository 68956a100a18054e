import { Client, Connection } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { SearchAttributes, SEARCH_ATTRIBUTE_NAMES } from './search-attributes';
import { temporal } from '@temporalio/proto';
import type { Config } from './config';

export { SearchAttributes, SEARCH_ATTRIBUTE_NAMES };

/** `KEY=Keyword` flags for `temporal server start-dev --search-attribute`. */
export function searchAttributeFlags(): string[] {
  return SEARCH_ATTRIBUTE_NAMES.flatMap((name) => ['--search-attribute', `${name}=Keyword`]);
}

/** TEMPORAL_ADDRESS, or the dev server `npm run dev` starts on TEMPORAL_DEV_PORT. */
export function temporalAddress(config: Pick<Config, 'temporal'>): string {
  return config.temporal.address ?? `127.0.0.1:${config.temporal.devPort}`;
}

export async function connectTemporal(address: string): Promise<Connection> {
  return Connection.connect({ address, connectTimeout: '10s' });
}

/**
 * The client's workflow starts, signals and queries make a client span and carry the active
 * trace context to the workflow in its headers; with tracing off (lib/tracing.ts) the span is
 * the API's no-op one and nothing is carried.
 */
export function createTemporalClient(connection: Connection, config: Pick<Config, 'temporal'>): Client {
  return new Client({
    connection,
    namespace: config.temporal.namespace,
    interceptors: { workflow: [new OpenTelemetryWorkflowClientInterceptor()] },
  });
}

/** Registers the custom search attributes on a server that does not have them yet (idempotent). */
export async function ensureSearchAttributes(connection: Connection, namespace: string): Promise<string[]> {
  const existing = await connection.operatorService.listSearchAttributes({ namespace });
  const missing = SEARCH_ATTRIBUTE_NAMES.filter((name) => !(name in (existing.customAttributes ?? {})));
  if (missing.length === 0) return [];
  await connection.operatorService.addSearchAttributes({
    namespace,
    searchAttributes: Object.fromEntries(missing.map((name) => [name, temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD])),
  });
  return missing;
}

/** One cheap round trip that proves the frontend answers and the namespace exists. */
export async function checkTemporal(connection: Connection, namespace: string, timeoutMs = 2000): Promise<void> {
  await connection.withDeadline(Date.now() + timeoutMs, () => connection.workflowService.describeNamespace({ namespace }));
}
