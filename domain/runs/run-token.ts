import { createHmac, timingSafeEqual } from 'node:crypto';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, Execution } from '../../entities';
import type { Config } from '../../lib/config';
import type { FleetAccess } from '../../lib/host-contract';
import { AppError } from '../errors';
import { isFinal } from './execution-status';

/**
 * A run token (`execute_prompt`'s `fleet.token`, docs/host-protocol.md): what a running agent
 * shows the MCP endpoint to list and delegate to its subordinates. `mcpr_` + the execution's id
 * (32 hex digits) + `_` + its expiry (epoch ms) + `_` + an HMAC-SHA256 (43 base64url
 * characters) of execution, organisation, agent and expiry.
 *
 * Stateless: nothing is stored, so a token is never in the database nor in Temporal's history
 * (the prompt activity mints it as it calls the host). It is revoked by the run itself: every
 * use reads the execution row, and a run that ended (completed, failed, cancelled, timed out)
 * or was deleted refuses its token, as does a row whose organisation or agent is not the one
 * the token was minted for.
 */
export const RUN_TOKEN_PREFIX = 'mcpr_';
const RUN_TOKEN_FORMAT = /^mcpr_([0-9a-f]{32})_(\d{13})_([A-Za-z0-9_-]{43})$/;

export function isRunToken(token: string): boolean {
  return token.startsWith(RUN_TOKEN_PREFIX);
}

const RUN_BEARER = /^Bearer (mcpr_\S*)$/;

/** The run token an `Authorization` header bears, unchecked; undefined for any other header. */
export function bearerRunToken(authorization: string): string | undefined {
  return RUN_BEARER.exec(authorization)?.[1];
}

const signingKeys = new Map<string, Buffer>();

/** Derived from JWT_REFRESH_SECRET with its own label, as the API keys' hash key is (domain/api-keys/api-key-secret.ts). */
function signingKey(config: Pick<Config, 'auth'>): Buffer {
  let key = signingKeys.get(config.auth.refreshSecret);
  if (!key) {
    key = createHmac('sha256', config.auth.refreshSecret).update('mcp-fleet run token v1').digest();
    signingKeys.set(config.auth.refreshSecret, key);
  }
  return key;
}

function mac(config: Pick<Config, 'auth'>, run: RunTokenClaims, expiresAtMs: number): Buffer {
  return createHmac('sha256', signingKey(config)).update(`${run.executionId}.${run.organizationId}.${run.agentId}.${expiresAtMs}`).digest();
}

/**
 * Whether `signature` (a token's last part) is the MAC of these claims, in constant time.
 * Compared as text, not as decoded bytes: the 43rd base64url character of a 32-byte MAC carries
 * 2 bits that decoding drops, so 4 spellings would decode alike and a token altered there would
 * pass.
 */
export function signatureMatches(config: Pick<Config, 'auth'>, run: RunTokenClaims, expiresAtMs: number, signature: string): boolean {
  const presented = Buffer.from(signature);
  const expected = Buffer.from(mac(config, run, expiresAtMs).toString('base64url'));
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}

/** What a run token is bound to. */
export interface RunTokenClaims {
  executionId: string;
  organizationId: string;
  agentId: string;
}

/** A token for the run, valid until `expiresAtMs` (and only while the run is live). */
export function mintRunToken(config: Pick<Config, 'auth'>, run: RunTokenClaims, expiresAtMs: number): string {
  const ms = Math.floor(expiresAtMs);
  return `${RUN_TOKEN_PREFIX}${run.executionId.replace(/-/g, '')}_${ms}_${mac(config, run, ms).toString('base64url')}`;
}

/** Who presents a valid run token: its run, as the row is now. */
export interface RunPrincipal extends RunTokenClaims {
  /** Delegations above the run (0: started otherwise). */
  depth: number;
  expiresAt: number;
}

export type RunTokenRejection = 'invalid_run_token' | 'run_token_expired' | 'run_ended';

function refused(code: RunTokenRejection): AppError {
  const message =
    code === 'run_token_expired'
      ? 'This run token has expired'
      : code === 'run_ended'
        ? 'The run of this token has ended: its token is revoked'
        : 'The run token is not valid';
  return new AppError(401, code, message, undefined, { 'WWW-Authenticate': 'Bearer' });
}

function uuidOf(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * Checks a run token on every use: its form, the row of its run (one primary-key read), its
 * HMAC over what the row says (constant time), its expiry, and that the run has not ended. The
 * expired and ended answers come only after the HMAC matched, so they tell nothing to whoever
 * does not hold the token. Throws a 401 AppError.
 */
export async function verifyRunToken(em: EntityManager, config: Pick<Config, 'auth'>, token: string): Promise<RunPrincipal> {
  const parts = RUN_TOKEN_FORMAT.exec(token);
  if (!parts) throw refused('invalid_run_token');
  const executionId = uuidOf(parts[1]!);
  const expiresAt = Number(parts[2]);
  const row = await em.findOne(Execution, executionId, { fields: ['organization', 'agent', 'status', 'depth'] });
  if (!row?.agent) throw refused('invalid_run_token');
  const run = { executionId, organizationId: row.organization.id, agentId: row.agent.id };
  if (!signatureMatches(config, run, expiresAt, parts[3]!)) throw refused('invalid_run_token');
  if (expiresAt <= Date.now()) throw refused('run_token_expired');
  if (isFinal(row.status)) throw refused('run_ended');
  return { ...run, depth: row.depth, expiresAt };
}

/**
 * `execute_prompt`'s `fleet` argument for a run whose agent has at least one direct subordinate,
 * whatever their status (an INACTIVE one may be switched on while the run goes on; `delegate`
 * refuses one that cannot run): the endpoint and a token valid until the run's time is up.
 * Undefined for an agent without subordinates: it gets no token at all.
 */
export async function fleetAccessFor(
  em: EntityManager,
  config: Pick<Config, 'auth' | 'delegation'>,
  run: RunTokenClaims,
  expiresAtMs: number,
): Promise<FleetAccess | undefined> {
  const subordinates = await em.count(Agent, { organization: run.organizationId, supervisor: run.agentId });
  if (subordinates === 0) return undefined;
  return { url: config.delegation.mcpUrl, token: mintRunToken(config, run, expiresAtMs), expiresAt: new Date(expiresAtMs).toISOString() };
}
