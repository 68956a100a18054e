/**
 * Delegation as the engines do it (issue 22): a run's calls to the fleet's `list_subordinates`
 * and `delegate`, each reported as a tool_call and its tool_result like any tool the agent uses,
 * over one MCP connection (../fleet-client.ts): the one the host opened as the run arrived
 * (`EngineRun.fleetSession`), else one opened at the run's first call and closed with the run. A refusal, an unreachable fleet or a child run that did not complete is an answer
 * here, never a throw: each engine decides what it does to the run (docs/host-protocol.md,
 * "Delegation"). Only a stopped run throws. The run token goes in the connection's header and
 * nowhere else: every reason shown is cleaned of it.
 */
import { FleetRefusal, FleetSession, type DelegateRequest, type DelegateResult, type FleetClient, type Subordinate } from '../fleet-client';
import type { EngineRun } from './engine';

export const DELEGATE_TOOL = 'delegate';
export const LIST_SUBORDINATES_TOOL = 'list_subordinates';

/** Why a run without `fleet` cannot delegate. */
export const NO_FLEET_ACCESS =
  'this run has no fleet access: mcp-fleet gives it only to runs of an agent with subordinates (execute_prompt `fleet`)';

/** A child's output is shown in the tool_result event up to this length: the whole of it is the child's own log, and the parent's output. */
export const RESULT_OUTPUT_CHARS = 4000;

/** The status of a child run that did what it was asked. */
const COMPLETED = 'COMPLETED';

/**
 * What one `delegate` came to: the child run (completed, or started when not waited for), or why
 * not: `refused` when the fleet refused or could not be reached (no child run), else the child
 * ended otherwise than COMPLETED (`result` says how).
 */
export type Delegated =
  | { ok: true; result: DelegateResult }
  | { ok: false; refused: true; reason: string }
  | { ok: false; refused: false; reason: string; result: DelegateResult };

export type Listed = { ok: true; subordinates: Subordinate[] } | { ok: false; reason: string };

/** The child's result as its tool_result event shows it: the output cut to RESULT_OUTPUT_CHARS. */
function shownResult(result: DelegateResult): Record<string, unknown> {
  const output = result.output;
  if (typeof output !== 'string' || output.length <= RESULT_OUTPUT_CHARS) return { ...result };
  return { ...result, output: `${output.slice(0, RESULT_OUTPUT_CHARS)}…`, outputChars: output.length };
}

/** `a child run … ended FAILED: …`: why a waited-for child did not complete. */
export function childFailure(result: DelegateResult): string {
  return `the child run ${result.executionId} ended ${result.status}${result.error ? `: ${result.error}` : ''}`;
}

/** One run's delegation, over the host's connection for the run, or one of its own, opened lazily and closed by `close()`. */
export class Delegation {
  private readonly session: FleetSession | undefined;
  private readonly ownSession: boolean;

  constructor(private readonly run: EngineRun) {
    this.ownSession = !run.fleetSession && run.fleet !== undefined;
    this.session = run.fleetSession ?? (run.fleet ? new FleetSession(run.fleet, run.signal) : undefined);
  }

  /** Whether this run may delegate at all (mcp-fleet sent it `fleet`). */
  get available(): boolean {
    return this.run.fleet !== undefined;
  }

  /** Hands `request` to a subordinate, reported as tool_call `delegate` and its tool_result. */
  async delegate(request: DelegateRequest, toolCallId: string): Promise<Delegated> {
    await this.run.emit({ type: 'tool_call', toolCallId, name: DELEGATE_TOOL, arguments: { ...request } });
    let result: DelegateResult;
    try {
      result = await (await this.connect()).delegate(request, { signal: this.run.signal, callId: toolCallId });
    } catch (error) {
      const reason = this.reasonOf(error);
      await this.run.emit({ type: 'tool_result', toolCallId, name: DELEGATE_TOOL, result: { error: reason } });
      return { ok: false, refused: true, reason };
    }
    await this.run.emit({ type: 'tool_result', toolCallId, name: DELEGATE_TOOL, result: shownResult(result) });
    // A child not waited for has only started: that is what was asked.
    if (request.wait === false || result.status === COMPLETED) return { ok: true, result };
    return { ok: false, refused: false, reason: childFailure(result), result };
  }

  /** The run's direct subordinates, reported as tool_call `list_subordinates` and its tool_result. */
  async listSubordinates(toolCallId: string): Promise<Listed> {
    await this.run.emit({ type: 'tool_call', toolCallId, name: LIST_SUBORDINATES_TOOL, arguments: {} });
    try {
      const subordinates = await (await this.connect()).listSubordinates();
      await this.run.emit({ type: 'tool_result', toolCallId, name: LIST_SUBORDINATES_TOOL, result: { subordinates } });
      return { ok: true, subordinates };
    } catch (error) {
      const reason = this.reasonOf(error);
      await this.run.emit({ type: 'tool_result', toolCallId, name: LIST_SUBORDINATES_TOOL, result: { error: reason } });
      return { ok: false, reason };
    }
  }

  /** Closes the connection this delegation opened itself (the host closes its own with the run). */
  async close(): Promise<void> {
    if (this.ownSession) await this.session?.close();
  }

  private connect(): Promise<FleetClient> {
    if (!this.session) return Promise.reject(new FleetRefusal(NO_FLEET_ACCESS));
    return this.session.client();
  }

  /** The reason shown for a failed call; rethrows when the run was stopped (the engine ends it). */
  private reasonOf(error: unknown): string {
    if (this.run.signal.aborted) throw error;
    const message = error instanceof Error ? error.message : String(error);
    const reason = error instanceof FleetRefusal ? message : `the fleet could not be reached: ${message}`;
    const token = this.run.fleet?.token;
    return token ? reason.split(token).join('[redacted]') : reason;
  }
}
