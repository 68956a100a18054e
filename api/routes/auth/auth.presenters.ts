import type { Organization } from '../../../entities';
import type { AuthResult } from '../../auth/auth.service';
import { presentUser } from '../users/users.presenters';

export function presentOrganization(org: Organization) {
  return { id: org.id, name: org.name, slug: org.slug, createdAt: org.createdAt.toISOString() };
}

/** A token pair, with whom it belongs to. */
export function presentAuthResult(result: AuthResult) {
  return {
    user: presentUser(result.user),
    organization: presentOrganization(result.organization),
    accessToken: result.accessToken,
    refreshToken: result.refreshToken,
    expiresIn: result.expiresIn,
  };
}
