import { UserRole } from '../../entities';
import { apiKeyIdOf, apiKeyMatches } from '../../domain/api-keys/api-key-secret';
import { lowerRole } from '../../domain/api-keys/api-key-commands';
import type { AppDeps } from '../deps';

/** Who a valid API key acts for, and with what (its owner, at the lower of the two roles). */
export interface ApiKeyPrincipal {
  keyId: string;
  name: string;
  prefix: string;
  userId: string;
  email: string;
  organizationId: string;
  /** min(the key's role, its owner's current role). */
  role: UserRole;
  /** Epoch ms, or +Infinity for a key that does not expire. */
  expiresAt: number;
}

/** Why a key was refused: the 401's code. */
export type ApiKeyRejection = 'invalid_api_key' | 'api_key_revoked' | 'api_key_expired';

export class ApiKeyRejected extends Error {
  constructor(readonly code: ApiKeyRejection) {
    super(
      code === 'api_key_revoked'
        ? 'This API key was revoked'
        : code === 'api_key_expired'
          ? 'This API key has expired'
          : 'The API key is not valid',
    );
    this.name = 'ApiKeyRejected';
  }
}

interface ApiKeyRow {
  id: string;
  organization_id: string;
  name: string;
  prefix: string;
  role: UserRole;
  secret_hash: string;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  user_id: string;
  email: string;
  owner_role: UserRole;
  owner_organization_id: string;
}

/** `lastUsedAt` is written at most this often per key: a hint for people, not a log of every call. */
const LAST_USED_EVERY_MS = 60_000;

/** One primary-key lookup: the key joined to its owner's current role. A deleted owner took the row with them. */
async function loadApiKeyRow(deps: Pick<AppDeps, 'orm'>, id: string): Promise<ApiKeyRow | undefined> {
  const rows = await deps.orm.em.getConnection().execute<ApiKeyRow[]>(
    `select k.id, k.organization_id, k.name, k.prefix, k.role, k.secret_hash, k.expires_at, k.revoked_at, k.last_used_at,
              u.id as user_id, u.email, u.role as owner_role, u.organization_id as owner_organization_id
         from api_keys k join users u on u.id = k.owner_id where k.id = ?`,
    [id],
  );
  return rows[0];
}

function principalOf(row: ApiKeyRow): ApiKeyPrincipal {
  return {
    keyId: row.id,
    name: row.name,
    prefix: row.prefix,
    userId: row.user_id,
    email: row.email,
    organizationId: row.organization_id,
    role: lowerRole(row.role, row.owner_role),
    expiresAt: row.expires_at ? new Date(row.expires_at).getTime() : Number.POSITIVE_INFINITY,
  };
}

function rejectionOf(row: ApiKeyRow): ApiKeyRejection | undefined {
  // A user never moves between organisations; checked anyway, so a key can only act where it was made.
  if (row.owner_organization_id !== row.organization_id) return 'invalid_api_key';
  if (row.revoked_at) return 'api_key_revoked';
  if (row.expires_at && new Date(row.expires_at).getTime() <= Date.now()) return 'api_key_expired';
  return undefined;
}

/**
 * Checks a bearer token that looks like an API key (`mcpf_…`): its form, its row, its hash (in
 * constant time), then revoked, expired. The revoked and expired answers come only after the
 * hash matched, so they tell nothing to whoever does not hold the key.
 */
export async function authenticateApiKey(deps: Pick<AppDeps, 'config' | 'orm'>, token: string): Promise<ApiKeyPrincipal> {
  const id = apiKeyIdOf(token);
  if (!id) throw new ApiKeyRejected('invalid_api_key');
  const row = await loadApiKeyRow(deps, id);
  if (!row || !apiKeyMatches(deps.config, token, row.secret_hash)) throw new ApiKeyRejected('invalid_api_key');
  const rejection = rejectionOf(row);
  if (rejection) throw new ApiKeyRejected(rejection);
  if (!row.last_used_at || Date.now() - new Date(row.last_used_at).getTime() >= LAST_USED_EVERY_MS) {
    // Conditional, so instances racing on the same key write it once; a failed write of this
    // hint must not refuse a valid key (the next request a minute on tries again).
    await deps.orm.em
      .getConnection()
      .execute(
        `update api_keys set last_used_at = now() where id = ? and (last_used_at is null or last_used_at < now() - interval '${LAST_USED_EVERY_MS / 1000} seconds')`,
        [id],
        'run',
      )
      .catch(() => undefined);
  }
  return principalOf(row);
}

/**
 * Checks again, for a feed opened with a key earlier, that the key still holds and gives the
 * same role: why it no longer does, or undefined. One primary-key lookup.
 */
export async function apiKeyEndReason(
  deps: Pick<AppDeps, 'orm'>,
  opened: Pick<ApiKeyPrincipal, 'keyId' | 'role' | 'organizationId'>,
): Promise<'api_key_revoked' | 'token_expired' | 'session_revoked' | 'role_changed' | undefined> {
  const row = await loadApiKeyRow(deps, opened.keyId);
  if (!row) return 'session_revoked';
  const rejection = rejectionOf(row);
  if (rejection === 'api_key_revoked') return 'api_key_revoked';
  if (rejection === 'api_key_expired') return 'token_expired';
  if (rejection) return 'session_revoked';
  const now = principalOf(row);
  if (now.role !== opened.role || now.organizationId !== opened.organizationId) return 'role_changed';
  return undefined;
}
