import { AbilityBuilder, createMongoAbility, type MongoAbility, type MongoQuery } from '@casl/ability';
import { packRules, type PackRule } from '@casl/ability/extra';
import type {
  Agent,
  AgentToolPermission,
  ApiKey,
  AuditLog,
  Execution,
  McpServer,
  Organization,
  ServerTool,
  Task,
  ToolDefinition,
  User,
  Webhook,
} from '../../entities';
import { UserRole } from '../../entities';

/** Sensitive transitions have their own action: `validate` an agent, `execute` it, `install` a tool, `cancel` a run. */
export type Action = 'manage' | 'create' | 'read' | 'update' | 'delete' | 'validate' | 'execute' | 'install' | 'cancel' | 'test';

type SubjectMap = {
  Organization: Organization;
  User: User;
  AuditLog: AuditLog;
  McpServer: McpServer;
  Agent: Agent;
  Task: Task;
  Execution: Execution;
  ToolDefinition: ToolDefinition;
  ServerTool: ServerTool;
  AgentToolPermission: AgentToolPermission;
  Webhook: Webhook;
  ApiKey: ApiKey;
};
export type SubjectType = keyof SubjectMap;
export type Subject = SubjectType | SubjectMap[SubjectType] | 'all';

export type AppAbility = MongoAbility<[Action, Subject], MongoQuery>;

export interface Principal {
  userId: string;
  organizationId: string;
  role: UserRole;
}

export const ROLES = Object.values(UserRole);

/** Tenant rows every member of the organisation may read. */
const ORG_READABLE: SubjectType[] = ['McpServer', 'Agent', 'Task', 'Execution', 'ServerTool', 'AgentToolPermission'];

type Builder = AbilityBuilder<AppAbility>;
type RoleBuilder = (b: Builder, p: Principal, inOrg: MongoQuery) => void;

const ROLE_BUILDERS: Record<UserRole, RoleBuilder> = {
  [UserRole.ADMIN]: ({ can }, _p, inOrg) => {
    can(
      'manage',
      [
        'User',
        'AuditLog',
        'McpServer',
        'Agent',
        'Task',
        'Execution',
        'ToolDefinition',
        'ServerTool',
        'AgentToolPermission',
        'Webhook',
        // Every key of the organisation: an ADMIN sees and revokes a leaked or forgotten one.
        'ApiKey',
      ],
      inOrg,
    );
  },
  [UserRole.MANAGER]: ({ can }, _p, inOrg) => {
    can('read', ORG_READABLE, inOrg);
    // Not the catalog (ToolDefinition): every entry carries install, uninstall and version
    // commands that hosts run as their own user (root on most), on every server it is installed
    // on. Writing them is ADMIN's; a MANAGER installs and grants what an ADMIN wrote.
    can('manage', ['McpServer', 'Agent', 'Task', 'ServerTool', 'AgentToolPermission'], inOrg);
    // Where alerts go: an endpoint's URL receives the organisation's failures, so not OPERATOR's or VIEWER's to set.
    can('manage', 'Webhook', inOrg);
    can(['read', 'cancel'], 'Execution', inOrg);
    can('read', 'AuditLog', inOrg);
  },
  [UserRole.OPERATOR]: ({ can }, _p, inOrg) => {
    can('read', ORG_READABLE, inOrg);
    can('execute', 'Agent', inOrg);
    can(['create', 'update', 'delete', 'execute'], 'Task', inOrg);
    can('cancel', 'Execution', inOrg);
  },
  [UserRole.VIEWER]: ({ can }, _p, inOrg) => {
    can('read', ORG_READABLE, inOrg);
  },
};

/**
 * Builds the caller's ability. Every tenant rule is conditioned on the caller's organisation,
 * so a rule can never reach another organisation's rows, whatever the role.
 */
export function defineAbilityFor(principal: Principal): AppAbility {
  const roleBuilder = ROLE_BUILDERS[principal.role];
  if (!roleBuilder) throw new Error(`Unknown role: ${String(principal.role)}`);
  const builder = new AbilityBuilder<AppAbility>(createMongoAbility);
  const inOrg: MongoQuery = { 'organization.id': principal.organizationId };

  builder.can('read', 'Organization', { id: principal.organizationId });
  builder.can('read', 'User', { id: principal.userId });
  // The catalog: the built-in entries (no organisation; nobody may change them) and the organisation's own.
  builder.can('read', 'ToolDefinition', { organization: null });
  builder.can('read', 'ToolDefinition', inOrg);
  // Every member makes, lists and revokes their own API keys (a key's role is capped by its owner's).
  builder.can(['create', 'read', 'delete'], 'ApiKey', { 'organization.id': principal.organizationId, 'owner.id': principal.userId });
  roleBuilder(builder, principal, inOrg);
  if (principal.role === UserRole.ADMIN) builder.can('update', 'Organization', { id: principal.organizationId });
  // The audit log is append-only, for everyone.
  builder.cannot(['update', 'delete'], 'AuditLog');

  // Subject type = entity class name (CASL's default detection), or the `subject()` helper's tag.
  return builder.build();
}

/** Rules in CASL's packed form, for a dashboard to hide what the caller may not do. */
export function packAbility(ability: AppAbility): PackRule<AppAbility['rules'][number]>[] {
  return packRules(ability.rules);
}
