import { randomUUID } from 'node:crypto';
import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { ApiKey, Organization, User, UserRole } from '../../entities';
import type { Config } from '../../lib/config';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError, fieldError } from '../errors';
import { publishEventOnCommit } from '../events';
import { newApiKey } from './api-key-secret';

/** Most powerful first: a key's effective role is the later of its own and its owner's. */
const ROLE_ORDER: UserRole[] = [UserRole.ADMIN, UserRole.MANAGER, UserRole.OPERATOR, UserRole.VIEWER];

/** The lower of two roles: what a key may do is at most what its owner may do today. */
export function lowerRole(a: UserRole, b: UserRole): UserRole {
  return ROLE_ORDER.indexOf(a) >= ROLE_ORDER.indexOf(b) ? a : b;
}

export interface NewApiKey {
  name: string;
  /** At most the creator's role; the creator's role when left out. */
  role?: UserRole;
  expiresAt?: Date;
}

/**
 * Creates a key for the acting person, who owns it. `creatorRole` is the role the caller
 * acts with now. The key itself is in the answer only: the row keeps its keyed hash.
 */
export async function createApiKey(
  em: EntityManager,
  config: Pick<Config, 'auth'>,
  actor: Actor,
  creatorRole: UserRole,
  input: NewApiKey,
): Promise<{ apiKey: ApiKey; token: string }> {
  if (!actor.userId) throw new Error('An API key needs a person to own it');
  const role = input.role ?? creatorRole;
  if (lowerRole(role, creatorRole) !== role)
    throw new AppError(403, 'role_too_high', `A key's role can be at most your own (${creatorRole})`, [
      { path: 'body.role', message: `at most ${creatorRole}, your own role`, code: 'role_too_high' },
    ]);
  if (input.expiresAt && input.expiresAt.getTime() <= Date.now())
    throw fieldError('body.expiresAt', 'must be in the future', 'in_the_past');
  const id = randomUUID();
  const { token, prefix, hash } = newApiKey(config, id);
  const apiKey = em.create(ApiKey, {
    id,
    organization: em.getReference(Organization, actor.organizationId),
    owner: em.getReference(User, actor.userId),
    name: input.name,
    role,
    prefix,
    secretHash: hash,
    expiresAt: input.expiresAt,
  });
  audit(em, actor, {
    action: 'api_key.create',
    resourceType: 'api_key',
    resourceId: apiKey.id,
    changes: { name: apiKey.name, role, prefix, expiresAt: input.expiresAt?.toISOString() ?? null },
  });
  await em.flush();
  return { apiKey, token };
}

/**
 * Revokes a key, in the caller's transaction `tx`. Requests with it are refused from the
 * commit on (each one reads the row), and every API instance closes the sockets and SSE
 * streams opened with it when the notice arrives, which PostgreSQL delivers at commit.
 * Revoking a revoked key changes nothing and records nothing.
 */
export async function revokeApiKey(tx: EntityManager, actor: Actor, apiKey: ApiKey): Promise<void> {
  // Two revocations at once: the second waits here, then sees the first's, and records nothing.
  await tx.findOneOrFail(ApiKey, apiKey.id, { lockMode: LockMode.PESSIMISTIC_WRITE, refresh: true });
  if (apiKey.revokedAt) return;
  apiKey.revokedAt = new Date();
  audit(tx, actor, {
    action: 'api_key.revoke',
    resourceType: 'api_key',
    resourceId: apiKey.id,
    changes: { name: apiKey.name, prefix: apiKey.prefix, owner: apiKey.owner.id },
  });
  await publishEventOnCommit(tx, {
    type: 'session:ended',
    organizationId: actor.organizationId,
    apiKeyId: apiKey.id,
    reason: 'api_key_revoked',
  });
  await tx.flush();
}
