import type { EntityManager } from '@mikro-orm/postgresql';
import { isHostContractTool, type AllowedTool } from '../../lib/host-contract';
import { splitCommandLine } from '../../lib/command-line';
import { commandRefusal } from '../../lib/tool-commands';
import { AppError } from '../errors';
import { platformToolProblem } from './reserved-names';

/**
 * What an agent may use at run time. A grant (`canUse`) takes effect once its tool is
 * available on the agent's server: its ServerTool is INSTALLED there, or the server's own
 * tools/list (the last check's snapshot) offers a tool of that name. Until then the grant is
 * pending install: kept, shown, and not sent to the host.
 *
 * The condition, over `a` (agents), `s` (mcp_servers) and `t` (tool_definitions); written once
 * so that the list a host receives and the check before a direct call cannot disagree.
 */
const AVAILABLE_ON_SERVER = `(exists (select 1 from server_tools st where st.server_id = a.server_id and st.tool_id = t.id and st.status = 'INSTALLED')
  or coalesce(s.tools_snapshot, '[]'::jsonb) @> jsonb_build_array(jsonb_build_object('name', t.name)))`;

/** A direct tool call the agent may not make: the run fails with this message, and nothing reaches the host. */
export class ToolCallRefused extends AppError {
  constructor(message: string, details: { agentId: string; toolName: string; command?: string }) {
    super(403, 'tool_not_allowed', message, details);
    this.name = 'ToolCallRefused';
  }
}

/** The `allowedTools` of an `execute_prompt` call: the agent's effective grants, by tool name. */
export async function allowedToolsFor(em: EntityManager, agentId: string): Promise<AllowedTool[]> {
  const rows = await em.execute<{ name: string; allowed_commands: string[]; blocked_commands: string[]; requires_approval: boolean }[]>(
    `select t.name, p.allowed_commands, p.blocked_commands, p.requires_approval
       from agent_tool_permissions p
       join agents a on a.id = p.agent_id
       join mcp_servers s on s.id = a.server_id
       join tool_definitions t on t.id = p.tool_id
      where p.agent_id = ? and p.can_use and ${AVAILABLE_ON_SERVER}
      order by t.name`,
    [agentId],
  );
  // requiresApproval only when set: hosts that predate approval gates read the same entries as before.
  // A grant of a host contract tool (written before the names were reserved) is never sent:
  // a host must not let an agent call the platform's own tools.
  return rows
    .filter((r) => !isHostContractTool(r.name))
    .map((r) => ({
      name: r.name,
      allowedCommands: r.allowed_commands,
      blockedCommands: r.blocked_commands,
      ...(r.requires_approval ? { requiresApproval: true } : {}),
    }));
}

/** The ids of the agent's granted tools that are available on its server (the others are pending install). */
export async function availableGrants(em: EntityManager, agentId: string): Promise<Set<string>> {
  const rows = await em.execute<{ tool_id: string }[]>(
    `select p.tool_id
       from agent_tool_permissions p
       join agents a on a.id = p.agent_id
       join mcp_servers s on s.id = a.server_id
       join tool_definitions t on t.id = p.tool_id
      where p.agent_id = ? and ${AVAILABLE_ON_SERVER}`,
    [agentId],
  );
  return new Set(rows.map((r) => r.tool_id));
}

/**
 * Refuses (ToolCallRefused) a direct call of `toolName` by the agent, and of `command` (the
 * command line after the tool's name) when given, unless a grant allows it and the tool is
 * available on the agent's server. The one check made before a call that bypasses the host's
 * own enforcement (a `kind: tool` task). A tool of the host contract is refused whatever the
 * grants say: a task or a catalog entry written before the names were reserved cannot run
 * one either.
 */
export async function assertToolCallAllowed(em: EntityManager, agentId: string, toolName: string, command?: string): Promise<void> {
  const details = { agentId, toolName, ...(command !== undefined ? { command } : {}) };
  const reserved = platformToolProblem(toolName, 'called by a task');
  if (reserved) throw new ToolCallRefused(reserved, details);
  const rows = await em.execute<
    {
      agent_name: string;
      can_use: boolean | null;
      allowed_commands: string[] | null;
      blocked_commands: string[] | null;
      available: boolean;
    }[]
  >(
    `select a.name as agent_name, p.can_use, p.allowed_commands, p.blocked_commands, ${AVAILABLE_ON_SERVER} as available
       from agents a
       join mcp_servers s on s.id = a.server_id
       left join tool_definitions t on t.name = ? and (t.organization_id is null or t.organization_id = a.organization_id)
       left join agent_tool_permissions p on p.agent_id = a.id and p.tool_id = t.id
      where a.id = ?`,
    [toolName, agentId],
  );
  if (!rows.length) throw new ToolCallRefused('the agent no longer exists', details);
  const agentName = rows[0]!.agent_name;
  const granted = rows.filter((r) => r.can_use);
  if (!granted.length) throw new ToolCallRefused(`agent ${agentName} is not granted the tool ${toolName}`, details);
  const available = granted.filter((r) => r.available);
  if (!available.length)
    throw new ToolCallRefused(
      `the tool ${toolName} is not installed on agent ${agentName}'s server: its grant waits for the install`,
      details,
    );
  const words = command === undefined ? [] : splitCommandLine(command);
  if (!words) throw new ToolCallRefused(`"${command}" is not a valid command line (unterminated quote)`, details);
  const refusals = available.map((r) =>
    commandRefusal({ name: toolName, allowedCommands: r.allowed_commands ?? [], blockedCommands: r.blocked_commands ?? [] }, words),
  );
  if (refusals.every((reason) => reason !== undefined)) throw new ToolCallRefused(refusals[0]!, details);
}
