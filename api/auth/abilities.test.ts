import { randomUUID } from 'node:crypto';
import { subject } from '@casl/ability';
import { UserRole } from '../../entities';
import { defineAbilityFor, type Action, type SubjectType } from './abilities';
import { accessibleFilter } from './scope';

const { ADMIN, MANAGER, OPERATOR, VIEWER } = UserRole;
const ALL = [ADMIN, MANAGER, OPERATOR, VIEWER];
const NONE: UserRole[] = [];

/**
 * The design's matrix: who may do what to which subject in their own organisation.
 * ADMIN manages all; MANAGER manages servers/agents/tasks, installs catalog tools and sets
 * permissions, and validates agents, but does not write the catalog (its commands run as the
 * hosts' user); OPERATOR reads, executes agents and manages tasks; VIEWER reads.
 */
const MATRIX: Record<SubjectType, Partial<Record<Action, UserRole[]>>> = {
  Organization: { read: ALL, update: [ADMIN], delete: NONE },
  User: { read: [ADMIN], create: [ADMIN], update: [ADMIN], delete: [ADMIN] },
  AuditLog: { read: [ADMIN, MANAGER], create: [ADMIN], update: NONE, delete: NONE },
  McpServer: { read: ALL, create: [ADMIN, MANAGER], update: [ADMIN, MANAGER], delete: [ADMIN, MANAGER], test: [ADMIN, MANAGER] },
  Agent: {
    read: ALL,
    create: [ADMIN, MANAGER],
    update: [ADMIN, MANAGER],
    delete: [ADMIN, MANAGER],
    validate: [ADMIN, MANAGER],
    execute: [ADMIN, MANAGER, OPERATOR],
  },
  Task: {
    read: ALL,
    create: [ADMIN, MANAGER, OPERATOR],
    update: [ADMIN, MANAGER, OPERATOR],
    delete: [ADMIN, MANAGER, OPERATOR],
    execute: [ADMIN, MANAGER, OPERATOR],
  },
  Execution: { read: ALL, cancel: [ADMIN, MANAGER, OPERATOR], delete: [ADMIN], update: [ADMIN] },
  // Every catalog entry carries commands hosts run as their own user: ADMIN only.
  ToolDefinition: { read: ALL, create: [ADMIN], update: [ADMIN], delete: [ADMIN], manage: [ADMIN] },
  ServerTool: { read: ALL, install: [ADMIN, MANAGER], delete: [ADMIN, MANAGER] },
  AgentToolPermission: { read: ALL, create: [ADMIN, MANAGER], update: [ADMIN, MANAGER], delete: [ADMIN, MANAGER] },
  Webhook: { read: [ADMIN, MANAGER], create: [ADMIN, MANAGER], update: [ADMIN, MANAGER], delete: [ADMIN, MANAGER] },
  // Another member's key (the target's owner is nobody's): only an ADMIN; everyone has their own (below).
  ApiKey: { read: [ADMIN], create: [ADMIN], delete: [ADMIN], update: [ADMIN] },
};

const rows = Object.entries(MATRIX).flatMap(([subjectType, actions]) =>
  Object.entries(actions).flatMap(([action, allowed]) => ALL.map((role) => [role, action, subjectType, allowed.includes(role)] as const)),
);

describe('defineAbilityFor', () => {
  const organizationId = randomUUID();
  const otherOrganizationId = randomUUID();

  function target(subjectType: SubjectType, orgId: string) {
    if (subjectType === 'Organization') return subject('Organization', { id: orgId } as never);
    return subject(subjectType, { id: randomUUID(), organization: { id: orgId } } as never);
  }

  it.each(rows)('%s %s %s in its own organisation → %s', (role, action, subjectType, expected) => {
    const ability = defineAbilityFor({ userId: randomUUID(), organizationId, role });
    expect(ability.can(action as Action, target(subjectType as SubjectType, organizationId))).toBe(expected);
  });

  it.each(rows)('%s %s %s of another organisation → false', (role, action, subjectType) => {
    const ability = defineAbilityFor({ userId: randomUUID(), organizationId, role });
    expect(ability.can(action as Action, target(subjectType as SubjectType, otherOrganizationId))).toBe(false);
  });

  it.each(ALL)('%s may read its own user record, not a colleague’s unless ADMIN', (role) => {
    const userId = randomUUID();
    const ability = defineAbilityFor({ userId, organizationId, role });
    expect(ability.can('read', subject('User', { id: userId, organization: { id: organizationId } } as never))).toBe(true);
    expect(ability.can('read', subject('User', { id: randomUUID(), organization: { id: organizationId } } as never))).toBe(role === ADMIN);
  });

  it.each(ALL)('%s makes, lists and revokes its own API keys, and another member’s only as ADMIN', (role) => {
    const userId = randomUUID();
    const ability = defineAbilityFor({ userId, organizationId, role });
    const own = subject('ApiKey', { id: randomUUID(), organization: { id: organizationId }, owner: { id: userId } } as never);
    const colleagues = subject('ApiKey', { id: randomUUID(), organization: { id: organizationId }, owner: { id: randomUUID() } } as never);
    const elsewhere = subject('ApiKey', { id: randomUUID(), organization: { id: otherOrganizationId }, owner: { id: userId } } as never);
    for (const action of ['create', 'read', 'delete'] as const) {
      expect(ability.can(action, own)).toBe(true);
      expect(ability.can(action, colleagues)).toBe(role === ADMIN);
      expect(ability.can(action, elsewhere)).toBe(false);
    }
  });

  it.each(ALL)('%s reads a built-in catalog entry and may change none', (role) => {
    const ability = defineAbilityFor({ userId: randomUUID(), organizationId, role });
    const builtin = subject('ToolDefinition', { id: randomUUID(), name: 'git', organization: null } as never);
    expect(ability.can('read', builtin)).toBe(true);
    for (const action of ['create', 'update', 'delete', 'manage'] as const) expect(ability.can(action, builtin)).toBe(false);
  });

  it('fails fast on an unknown role', () => {
    expect(() => defineAbilityFor({ userId: randomUUID(), organizationId, role: 'ROOT' as UserRole })).toThrow('Unknown role: ROOT');
  });

  describe('accessibleFilter (rules → MikroORM filter)', () => {
    it('scopes an ADMIN list of users to its organisation', () => {
      const ability = defineAbilityFor({ userId: randomUUID(), organizationId, role: ADMIN });
      expect(accessibleFilter(ability, 'read', 'User')).toEqual({
        $or: [{ organization: { id: organizationId } }, { id: expect.any(String) }],
      });
    });

    it('gives a non-ADMIN only its own user row', () => {
      const userId = randomUUID();
      const ability = defineAbilityFor({ userId, organizationId, role: VIEWER });
      expect(accessibleFilter(ability, 'read', 'User')).toEqual({ id: userId });
    });

    it('answers null (no query at all) when the role has no rule', () => {
      const ability = defineAbilityFor({ userId: randomUUID(), organizationId, role: VIEWER });
      expect(accessibleFilter(ability, 'read', 'AuditLog')).toBeNull();
      expect(accessibleFilter(ability, 'delete', 'McpServer')).toBeNull();
    });

    it('scopes the tool catalog to the built-in entries and the organisation’s own', () => {
      const ability = defineAbilityFor({ userId: randomUUID(), organizationId, role: VIEWER });
      expect(accessibleFilter(ability, 'read', 'ToolDefinition')).toEqual({
        $or: [{ organization: { id: organizationId } }, { organization: null }],
      });
    });
  });
});
