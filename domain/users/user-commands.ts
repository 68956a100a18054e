import { LockMode } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Organization, User, UserRole } from '../../entities';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError, uniqueOrConflict } from '../errors';
import { publishEventOnCommit } from '../events';

/**
 * What changes the members of an organisation. An organisation never loses its last ADMIN:
 * role changes and removals go one at a time per organisation and decide on the roles rows
 * have when the change commits. Authorisation is the caller's, on the rows it loaded.
 */

export interface NewUser {
  email: string;
  name: string;
  role: UserRole;
  password: string;
}

export interface UserChanges {
  role?: UserRole;
  name?: string;
}

function emailTaken(): AppError {
  return AppError.conflict('email_taken', 'An account with this email already exists');
}

/**
 * Loads a user for a role change or a removal, inside `tx`. These changes go one at a time
 * per organisation (an advisory lock), and the target is read under its row lock, so the
 * last-ADMIN check sees the role the row has when the change commits, never one read before a
 * concurrent promotion or demotion committed. Another organisation's user is a 404.
 */
export async function loadUserForChange(tx: EntityManager, organizationId: string, id: string): Promise<User> {
  await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`users-of:${organizationId}`]);
  const user = await tx.findOne(User, { id, organization: organizationId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  if (!user) throw AppError.notFound('User');
  return user;
}

/** Also locks the organisation's admins, against writers that do not take the advisory lock. */
async function assertNotLastAdmin(tx: EntityManager, user: User): Promise<void> {
  if (user.role !== UserRole.ADMIN) return;
  const admins = await tx.find(
    User,
    { organization: user.organization, role: UserRole.ADMIN },
    { lockMode: LockMode.PESSIMISTIC_WRITE, fields: ['id'] },
  );
  if (admins.length <= 1) throw AppError.conflict('last_admin', 'An organisation must keep at least one ADMIN');
}

/** Adds a user to the actor's organisation; `hashPassword` is the installation's password hash. */
export async function createUser(
  em: EntityManager,
  actor: Actor,
  input: NewUser,
  hashPassword: (password: string) => Promise<string>,
): Promise<User> {
  // Before the hash, which is slow on purpose.
  if (await em.count(User, { email: input.email })) throw emailTaken();
  const user = em.create(User, {
    organization: em.getReference(Organization, actor.organizationId),
    email: input.email,
    name: input.name,
    role: input.role,
    passwordHash: await hashPassword(input.password),
  });
  audit(em, actor, {
    action: 'user.create',
    resourceType: 'user',
    resourceId: user.id,
    changes: { email: user.email, name: user.name, role: user.role },
  });
  await uniqueOrConflict(() => em.flush(), emailTaken);
  return user;
}

/**
 * Changes a user's role or name, for a user loaded with `loadUserForChange` in `tx`. A new role
 * ends the user's open sockets and streams when `tx` commits: they hold an ability built with
 * the old one.
 */
export async function updateUser(tx: EntityManager, actor: Actor, user: User, input: UserChanges): Promise<User> {
  const changes: Record<string, unknown> = {};
  if (input.role && input.role !== user.role) {
    if (input.role !== UserRole.ADMIN) await assertNotLastAdmin(tx, user);
    changes.role = { from: user.role, to: input.role };
    user.role = input.role;
    await publishEventOnCommit(tx, {
      type: 'session:ended',
      organizationId: actor.organizationId,
      userId: user.id,
      reason: 'role_changed',
    });
  }
  if (input.name !== undefined && input.name !== user.name) {
    changes.name = { from: user.name, to: input.name };
    user.name = input.name;
  }
  if (Object.keys(changes).length) audit(tx, actor, { action: 'user.update', resourceType: 'user', resourceId: user.id, changes });
  await tx.flush();
  return user;
}

/** Removes a user loaded with `loadUserForChange` in `tx`; their sessions end with them. */
export async function deleteUser(tx: EntityManager, actor: Actor, user: User): Promise<void> {
  await assertNotLastAdmin(tx, user);
  audit(tx, actor, { action: 'user.delete', resourceType: 'user', resourceId: user.id, changes: { email: user.email, role: user.role } });
  tx.remove(user);
  await publishEventOnCommit(tx, { type: 'session:ended', organizationId: actor.organizationId, userId: user.id, reason: 'user_deleted' });
  await tx.flush();
}
