import { ForbiddenError, subject } from '@casl/ability';
import { LockMode, UniqueConstraintViolationException } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Organization, User, UserRole } from '../../../entities';
import type { ApiRouter } from '../../api-router';
import { auditByCaller } from '../../actor';
import type { AuthContext } from '../../auth/authenticate';
import { hashPassword } from '../../auth/passwords';
import { publishEventOnCommit } from '../../../domain/events';
import type { AppContext } from '../../context';
import type { AppDeps } from '../../deps';
import { containing, scopedPage } from '../../list';
import { AppError } from '../../../domain/errors';
import { presentUser } from '../../presenters';
import { IdParams, UserOut } from '../common.schemas';
import { CreateUserBody, ListUsersQuery, UpdateUserBody, UserPage } from './users.schemas';

/** Loads a user of the caller's organisation; anything else is a 404, never a 403. */
async function loadUser(em: EntityManager, auth: AuthContext, id: string): Promise<User> {
  const user = await em.findOne(User, { id, organization: auth.organizationId });
  if (!user) throw AppError.notFound('User');
  return user;
}

/**
 * Loads a user for a role change or a deletion. These changes go one at a time per
 * organisation (an advisory lock), and the target is read under its row lock, so the
 * last-ADMIN check below sees the role the row has when the change commits, never one read
 * before a concurrent promotion or demotion committed.
 */
async function loadUserForChange(tx: EntityManager, auth: AuthContext, id: string): Promise<User> {
  await tx.execute('select pg_advisory_xact_lock(hashtextextended(?, 0))', [`users-of:${auth.organizationId}`]);
  const user = await tx.findOne(User, { id, organization: auth.organizationId }, { lockMode: LockMode.PESSIMISTIC_WRITE });
  if (!user) throw AppError.notFound('User');
  return user;
}

/** Also locks the organisation's admins, against writers that do not take the advisory lock. */
async function assertNotLastAdmin(tx: EntityManager, user: User): Promise<void> {
  if (user.role !== UserRole.ADMIN) return;
  const admins = await tx.find(User, { organization: user.organization, role: UserRole.ADMIN }, { lockMode: LockMode.PESSIMISTIC_WRITE, fields: ['id'] });
  if (admins.length <= 1) throw AppError.conflict('last_admin', 'An organisation must keep at least one ADMIN');
}

function audit(ctx: AppContext, em: EntityManager, action: string, user: User, changes?: Record<string, unknown>) {
  auditByCaller(ctx, em, { action, resourceType: 'user', resourceId: user.id, changes });
}

export function userRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['users'];
  const em = () => deps.orm.em as EntityManager;

  api.route(
    { method: 'get', path: '/users', summary: "List the organisation's users (ADMIN)", tags, auth: true, request: { query: ListUsersQuery }, responses: { 200: { description: 'A page of users', schema: UserPage } } },
    async (ctx, { query }) => {
      const auth = ctx.state.auth!;
      ForbiddenError.from(auth.ability).throwUnlessCan('read', subject('User', { organization: { id: auth.organizationId } } as unknown as User));
      const filters: Record<string, unknown>[] = [];
      if (query.role) filters.push({ role: query.role });
      if (query.q) filters.push({ $or: [{ email: { $ilike: containing(query.q) } }, { name: { $ilike: containing(query.q) } }] });
      ctx.body = await scopedPage(em(), User, auth, 'User', query, filters, presentUser);
    },
  );

  api.route(
    { method: 'get', path: '/users/:id', summary: 'One user (ADMIN, or yourself)', tags, auth: true, request: { params: IdParams }, responses: { 200: { description: 'The user', schema: UserOut } } },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      const user = await loadUser(em(), auth, params.id);
      ForbiddenError.from(auth.ability).throwUnlessCan('read', user);
      ctx.body = presentUser(user);
    },
  );

  api.route(
    {
      method: 'post',
      path: '/users',
      summary: 'Add a user to the organisation (ADMIN)',
      tags,
      auth: true,
      request: { body: CreateUserBody },
      responses: { 201: { description: 'Created', schema: UserOut }, 409: { description: 'email_taken' } },
    },
    async (ctx, { body }) => {
      const auth = ctx.state.auth!;
      const organization = em().getReference(Organization, auth.organizationId);
      const draft = { organization, email: body.email, name: body.name, role: body.role as UserRole };
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('User', draft as unknown as User));
      if (await em().count(User, { email: body.email })) throw AppError.conflict('email_taken', 'An account with this email already exists');
      const user = em().create(User, { ...draft, passwordHash: await hashPassword(body.password, deps.config.auth.bcryptCost) });
      audit(ctx, em(), 'user.create', user, { email: user.email, name: user.name, role: user.role });
      try {
        await em().flush();
      } catch (error) {
        if (error instanceof UniqueConstraintViolationException) throw AppError.conflict('email_taken', 'An account with this email already exists');
        throw error;
      }
      ctx.status = 201;
      ctx.body = presentUser(user);
    },
  );

  api.route(
    {
      method: 'patch',
      path: '/users/:id',
      summary: "Change a user's role or name (ADMIN)",
      tags,
      auth: true,
      request: { params: IdParams, body: UpdateUserBody },
      responses: { 200: { description: 'Updated', schema: UserOut }, 409: { description: 'last_admin' } },
    },
    async (ctx, { params, body }) => {
      const auth = ctx.state.auth!;
      const updated = await em().transactional(async (tx) => {
        const user = await loadUserForChange(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', user);
        const changes: Record<string, unknown> = {};
        if (body.role && body.role !== user.role) {
          if (body.role !== UserRole.ADMIN) await assertNotLastAdmin(tx, user);
          changes.role = { from: user.role, to: body.role };
          user.role = body.role as UserRole;
          // Open sockets and streams hold an ability built with the old role: they close on commit.
          await publishEventOnCommit(tx, { type: 'session:ended', organizationId: auth.organizationId, userId: user.id, reason: 'role_changed' });
        }
        if (body.name !== undefined && body.name !== user.name) {
          changes.name = { from: user.name, to: body.name };
          user.name = body.name;
        }
        // Checked again after the change, so nobody moves a row out of their own reach.
        ForbiddenError.from(auth.ability).throwUnlessCan('update', user);
        if (Object.keys(changes).length) audit(ctx, tx, 'user.update', user, changes);
        return user;
      });
      ctx.body = presentUser(updated);
    },
  );

  api.route(
    {
      method: 'delete',
      path: '/users/:id',
      summary: 'Remove a user (ADMIN); their sessions end with them',
      tags,
      auth: true,
      request: { params: IdParams },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'last_admin' } },
    },
    async (ctx, { params }) => {
      const auth = ctx.state.auth!;
      await em().transactional(async (tx) => {
        const user = await loadUserForChange(tx, auth, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', user);
        await assertNotLastAdmin(tx, user);
        audit(ctx, tx, 'user.delete', user, { email: user.email, role: user.role });
        tx.remove(user);
        await publishEventOnCommit(tx, { type: 'session:ended', organizationId: auth.organizationId, userId: user.id, reason: 'user_deleted' });
      });
      ctx.status = 204;
    },
  );
}
