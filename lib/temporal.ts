import {
  Client,
  Connection,
  defaultGrpcRetryOptions,
  isGrpcServiceError,
  makeGrpcRetryInterceptor,
  type ConnectionOptions,
} from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry';
import { SearchAttributes, SEARCH_ATTRIBUTE_NAMES } from './search-attributes';
import { temporal } from '@temporalio/proto';
import type { Config } from './config';

export { SearchAttributes, SEARCH_ATTRIBUTE_NAMES };

/** `KEY=Keyword` flags for `temporal server start-dev --search-attribute`. */
export function searchAttributeFlags(): string[] {
  return SEARCH_ATTRIBUTE_NAMES.flatMap((name) => ['--search-attribute', `${name}=Keyword`]);
}

/**
 * Dynamic config of the dev server mcp-fleet starts (`npm run dev`, the tests, the benchmarks).
 *
 * `history.transferProcessorMaxPollRPS`: how often a history shard may read its transfer queue,
 * the queue that hands a new workflow task to matching (default 20 reads/s per shard). Each
 * short workflow costs about two reads (its start's workflow task, its close), and the dev
 * server has one shard, so above about 10 workflows/s every start waits for the reader's next
 * token, up to 50 ms, before its first workflow task reaches a poller: the "workflow started →
 * task started" step of a connection test measured 29–37 ms on a quiet machine (one check every
 * ~90 ms) and 5 ms under load (checks further apart); a bare workflow paced at 15–20/s waits
 * 25–37 ms, at 10/s 4 ms (docs/benchmarks.md). 200 reads/s keeps the wait at the reader's own
 * few ms up to ~100 workflows/s; a read is one range query on the in-memory SQLite store.
 * A production cluster reads per shard too: see docs/operations.md ("Sizing").
 */
export const DEV_SERVER_DYNAMIC_CONFIG: Readonly<Record<string, number>> = {
  'history.transferProcessorMaxPollRPS': 200,
};

/** `--dynamic-config-value KEY=VALUE` flags for `temporal server start-dev`. */
export function devServerDynamicConfigFlags(): string[] {
  return Object.entries(DEV_SERVER_DYNAMIC_CONFIG).flatMap(([key, value]) => ['--dynamic-config-value', `${key}=${value}`]);
}

/** TEMPORAL_ADDRESS, or the dev server `npm run dev` starts on TEMPORAL_DEV_PORT. */
export function temporalAddress(config: Pick<Config, 'temporal'>): string {
  return config.temporal.address ?? `127.0.0.1:${config.temporal.devPort}`;
}

/**
 * How the calls of a connection that answers people (the API's) treat a Temporal that is down
 * or stuck: they fail within a bound, and the caller answers 503 instead of holding the request.
 */
export interface TemporalCallPolicy {
  /** Tries of a call Temporal did not take (UNAVAILABLE and the SDK's other retryable codes), the first included. */
  attempts: number;
  /** The deadline of every call that sets none itself, except the long polls (LONG_POLL_METHODS). */
  deadlineMs: number;
}

/** Calls that wait on the server by design (a workflow's result, an update's outcome): no default deadline. */
const LONG_POLL_METHODS = new Set(['GetWorkflowExecutionHistory', 'PollWorkflowExecutionUpdate']);

type GrpcInterceptor = NonNullable<ConnectionOptions['interceptors']>[number];

/** Outermost, so the SDK's retries (the next interceptor) all fall within the one deadline. */
function defaultDeadline(deadlineMs: number): GrpcInterceptor {
  return (options, nextCall) => {
    const method = options.method_definition.path.split('/').pop() ?? '';
    const deadline = options.deadline ?? (LONG_POLL_METHODS.has(method) ? undefined : Date.now() + deadlineMs);
    // grpc-js chains interceptors by what each returns; the next call is as good as a wrapper of it.
    return nextCall({ ...options, deadline }) as ReturnType<GrpcInterceptor>;
  };
}

/**
 * grpc-js waits longer and longer (up to 2 min) between reconnection attempts to a server that
 * is down, and fails every call meanwhile: capped, a restarted Temporal is seen within seconds.
 */
const MAX_RECONNECT_BACKOFF_MS = 5000;

/** Without a policy, calls keep the SDK's retries (10 tries, about 20 s) and no deadline: the worker's. */
export function temporalConnectionOptions(address: string, policy?: TemporalCallPolicy): ConnectionOptions {
  return {
    address,
    connectTimeout: '10s',
    channelArgs: { 'grpc.max_reconnect_backoff_ms': MAX_RECONNECT_BACKOFF_MS },
    ...(policy
      ? {
          interceptors: [
            defaultDeadline(policy.deadlineMs),
            makeGrpcRetryInterceptor(defaultGrpcRetryOptions({ maxAttempts: policy.attempts })),
          ],
        }
      : {}),
  };
}

export async function connectTemporal(address: string, policy?: TemporalCallPolicy): Promise<Connection> {
  return Connection.connect(temporalConnectionOptions(address, policy));
}

// gRPC status codes (@grpc/grpc-js is the SDK's dependency, not ours).
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;

/**
 * Whether an error (or one of its causes: the SDK wraps the gRPC error) says Temporal could not
 * be reached or did not answer in time, rather than that it refused the request.
 */
export function isTemporalUnavailable(error: unknown): boolean {
  let current = error;
  for (let depth = 0; current && depth < 5; depth++) {
    if (isGrpcServiceError(current) && (current.code === GRPC_UNAVAILABLE || current.code === GRPC_DEADLINE_EXCEEDED)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
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
