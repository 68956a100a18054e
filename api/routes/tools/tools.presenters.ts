import type { AgentToolPermission, ToolDefinition } from '../../../entities';
import { isBuiltin } from '../../../domain/tools/catalog-commands';

export function presentTool(tool: ToolDefinition) {
  return {
    id: tool.id,
    name: tool.name,
    displayName: tool.displayName,
    description: tool.description ?? null,
    category: tool.category,
    installCommand: tool.installCommand,
    uninstallCommand: tool.uninstallCommand,
    versionCommand: tool.versionCommand,
    versionRegex: tool.versionRegex ?? null,
    homepage: tool.homepage ?? null,
    builtin: isBuiltin(tool),
    organizationId: tool.organization?.id ?? null,
    createdAt: tool.createdAt.toISOString(),
    updatedAt: tool.updatedAt.toISOString(),
  };
}

export function presentToolSummary(tool: ToolDefinition) {
  return { id: tool.id, name: tool.name, displayName: tool.displayName, category: tool.category, builtin: isBuiltin(tool) };
}

/** A permission with its state: `available` holds the tools usable on the agent's server now. */
export function presentPermission(permission: AgentToolPermission, available: ReadonlySet<string>) {
  const tool = permission.tool;
  return {
    toolId: tool.id,
    tool: presentToolSummary(tool),
    canUse: permission.canUse,
    allowedCommands: [...permission.allowedCommands],
    blockedCommands: [...permission.blockedCommands],
    requiresApproval: permission.requiresApproval,
    state: !permission.canUse ? ('not_granted' as const) : available.has(tool.id) ? ('active' as const) : ('pending_install' as const),
    grantedById: permission.grantedBy?.id ?? null,
    updatedAt: permission.updatedAt.toISOString(),
  };
}
