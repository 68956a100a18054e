import { ForbiddenError, subject } from '@casl/ability';
import { Organization, User, UserRole } from '../../../entities';
import { createUser, deleteUser, loadUserForChange, updateUser } from '../../../domain/users/user-commands';
import type { ApiRouter } from '../../api-router';
import { hashPassword } from '../../auth/passwords';
import type { AppDeps } from '../../deps';
import { containing, scopedPage } from '../../list';
import { loadUser } from '../../loaders';
import { IdParams, UserOut } from '../common.schemas';
import { presentUser } from './users.presenters';
import { CreateUserBody, ListUsersQuery, UpdateUserBody, UserPage } from './users.schemas';

export function userRoutes(api: ApiRouter, deps: AppDeps): void {
  const tags = ['users'];

  api.route(
    {
      method: 'get',
      path: '/users',
      summary: "List the organisation's users (ADMIN)",
      tags,
      request: { query: ListUsersQuery },
      responses: { 200: { description: 'A page of users', schema: UserPage } },
    },
    async (ctx, { query, em, auth }) => {
      ForbiddenError.from(auth.ability).throwUnlessCan(
        'read',
        subject('User', { organization: { id: auth.organizationId } } as unknown as User),
      );
      const filters: Record<string, unknown>[] = [];
      if (query.role) filters.push({ role: query.role });
      if (query.q) filters.push({ $or: [{ email: { $ilike: containing(query.q) } }, { name: { $ilike: containing(query.q) } }] });
      ctx.body = await scopedPage(em, User, auth, 'User', query, filters, presentUser);
    },
  );

  api.route(
    {
      method: 'get',
      path: '/users/:id',
      summary: 'One user (ADMIN, or yourself)',
      tags,
      request: { params: IdParams },
      responses: { 200: { description: 'The user', schema: UserOut } },
    },
    async (ctx, { params, em, auth }) => {
      const user = await loadUser(em, auth, params.id);
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
      request: { body: CreateUserBody },
      responses: { 201: { description: 'Created', schema: UserOut }, 409: { description: 'email_taken' } },
    },
    async (ctx, { body, em, auth, actor }) => {
      const organization = em.getReference(Organization, auth.organizationId);
      const draft = { organization, email: body.email, name: body.name, role: body.role as UserRole };
      ForbiddenError.from(auth.ability).throwUnlessCan('create', subject('User', draft as unknown as User));
      const user = await createUser(em, actor, { ...body, role: draft.role }, (password) =>
        hashPassword(password, deps.config.auth.bcryptCost),
      );
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
      request: { params: IdParams, body: UpdateUserBody },
      responses: { 200: { description: 'Updated', schema: UserOut }, 409: { description: 'last_admin' } },
    },
    async (ctx, { params, body, em, auth, actor }) => {
      const updated = await em.transactional(async (tx) => {
        const user = await loadUserForChange(tx, auth.organizationId, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('update', user);
        await updateUser(tx, actor, user, { role: body.role as UserRole | undefined, name: body.name });
        // Checked again before the commit, so nobody moves a row out of their own reach.
        ForbiddenError.from(auth.ability).throwUnlessCan('update', user);
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
      request: { params: IdParams },
      responses: { 204: { description: 'Deleted' }, 409: { description: 'last_admin' } },
    },
    async (ctx, { params, em, auth, actor }) => {
      await em.transactional(async (tx) => {
        const user = await loadUserForChange(tx, auth.organizationId, params.id);
        ForbiddenError.from(auth.ability).throwUnlessCan('delete', user);
        await deleteUser(tx, actor, user);
      });
      ctx.status = 204;
    },
  );
}
