/**
 * The reference host's way back to mcp-fleet for delegation (issue 22): an MCP client of the
 * fleet's endpoint, authenticated by the run's token (`execute_prompt`'s `fleet` argument,
 * lib/host-contract.ts). Engines call `listSubordinates` and `delegate`; what the fleet refuses
 * (not a direct subordinate, depth or fan-out limits, an ended run) comes back as a thrown
 * FleetRefusal with the fleet's reason, for the engine to show the agent.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { DELEGATION_CALL_META, type FleetAccess } from '../lib/host-contract';

/** One direct subordinate, as `list_subordinates` answers. */
export interface Subordinate {
  id: string;
  name: string;
  displayName: string | null;
  role: string;
  capabilities: string[];
  status: string;
}

/** What `delegate` answers: the child run and, when it was waited for, how it ended. */
export interface DelegateResult {
  executionId: string;
  status: string;
  output?: string | null;
  data?: unknown;
  error?: string;
}

export interface DelegateRequest {
  /** A direct subordinate's id or name. */
  agent: string;
  prompt: string;
  context?: Record<string, unknown>;
  /** Wait for the child run to end (default true). */
  wait?: boolean;
}

/** The fleet answered the call with a refusal (a tool error): `message` is its reason. */
export class FleetRefusal extends Error {
  override name = 'FleetRefusal';
}

export interface FleetClient {
  listSubordinates(): Promise<Subordinate[]>;
  /** `onProgress` gets the child's progress messages while the call waits. */
  /** `callId` names this call within the run (the engine's tool-call id): see DELEGATION_CALL_META. */
  delegate(
    request: DelegateRequest,
    options?: { signal?: AbortSignal; onProgress?: (message: string) => void; callId?: string },
  ): Promise<DelegateResult>;
  close(): Promise<void>;
}

const DAY_MS = 24 * 60 * 60_000;

const CLIENT_INFO = { name: 'mcp-fleet-reference-host', version: '0.1.0' };

function textOf(result: CallToolResult): string {
  return result.content
    .map((part) => (part.type === 'text' ? part.text : ''))
    .join('\n')
    .trim();
}

/** The call's structured answer, or FleetRefusal with the fleet's reason when it refused. */
function structured<T>(result: CallToolResult): T {
  if (result.isError) throw new FleetRefusal(textOf(result) || 'the fleet refused the call');
  if (result.structuredContent) return result.structuredContent as T;
  return JSON.parse(textOf(result)) as T;
}

/**
 * A 401 is the fleet refusing the token itself (the run has ended, or its token expired, or it
 * was never one): said as a refusal, not as an endpoint out of reach.
 */
function refusedToken(error: unknown): unknown {
  if (error instanceof StreamableHTTPError && error.code === 401)
    return new FleetRefusal("the fleet refused this run's token (HTTP 401): the run has ended or its token has expired");
  return error;
}

/**
 * The fleet's endpoint is stateless (every request is served on its own): the handshake's
 * `notifications/initialized` is sent without waiting for its 202, so a connection is one round
 * trip, and a call that overtakes the notification is served all the same. Its failure is the
 * transport's error, as any other.
 */
class FleetTransport extends StreamableHTTPClientTransport {
  override async send(message: JSONRPCMessage, options?: Parameters<StreamableHTTPClientTransport['send']>[1]): Promise<void> {
    if ('method' in message && message.method === 'notifications/initialized' && !('id' in message)) {
      super.send(message, options).catch((error: unknown) => this.onerror?.(error instanceof Error ? error : new Error(String(error))));
      return;
    }
    await super.send(message, options);
  }
}

/**
 * Opens the fleet's endpoint with the run's token (one MCP connection per run, closed by
 * `close`). Waiting calls time out only when the token expires, not at the SDK's 60 s default:
 * a delegated run can take as long as its parent has left.
 */
export async function openFleet(fleet: FleetAccess, signal?: AbortSignal): Promise<FleetClient> {
  const transport = new FleetTransport(new URL(fleet.url), {
    requestInit: { headers: { authorization: `Bearer ${fleet.token}` } },
  });
  const client = new Client(CLIENT_INFO);
  await client.connect(transport, { signal }).catch((error: unknown) => {
    throw refusedToken(error);
  });
  // An expiry the host cannot read is the fleet's to enforce: the call then waits as long as a day.
  const expiresAt = Date.parse(fleet.expiresAt);
  const untilExpiry = () => Math.max(1000, Number.isFinite(expiresAt) ? expiresAt - Date.now() : DAY_MS);
  return {
    async listSubordinates() {
      const result = (await client.callTool({ name: 'list_subordinates', arguments: {} }, undefined, { signal }).catch((error: unknown) => {
        throw refusedToken(error);
      })) as CallToolResult;
      return structured<{ subordinates: Subordinate[] }>(result).subordinates;
    },
    async delegate(request, options = {}) {
      const result = (await client
        .callTool(
          {
            name: 'delegate',
            arguments: { ...request },
            ...(options.callId ? { _meta: { [DELEGATION_CALL_META]: options.callId } } : {}),
          },
          undefined,
          {
            signal: options.signal ?? signal,
            timeout: untilExpiry(),
            maxTotalTimeout: untilExpiry(),
            resetTimeoutOnProgress: true,
            onprogress: (progress) => options.onProgress?.(progress.message ?? `progress ${progress.progress}`),
          },
        )
        .catch((error: unknown) => {
          throw refusedToken(error);
        })) as CallToolResult;
      return structured<DelegateResult>(result);
    },
    async close() {
      await client.close().catch(() => undefined);
    },
  };
}

/**
 * A run's connection to the fleet, shared by all its calls. The host opens it as the run
 * arrives (`warm`), so the engine's first call finds the MCP handshake done; a failed opening
 * is not kept: the next call tries again. Closed with the run.
 */
export class FleetSession {
  private opened: Promise<FleetClient> | undefined;

  constructor(
    private readonly fleet: FleetAccess,
    private readonly signal?: AbortSignal,
  ) {}

  /** Starts opening the connection now; nobody waits for it here. */
  warm(): this {
    this.client().catch(() => undefined);
    return this;
  }

  client(): Promise<FleetClient> {
    this.opened ??= openFleet(this.fleet, this.signal).catch((error: unknown) => {
      this.opened = undefined;
      throw error;
    });
    return this.opened;
  }

  async close(): Promise<void> {
    const opened = this.opened;
    this.opened = undefined;
    await opened?.then((client) => client.close()).catch(() => undefined);
  }
}
