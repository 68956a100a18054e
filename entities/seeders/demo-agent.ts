/**
 * The ready agent of `npm run dev`: a MASTER on the local reference host ("local-host"), ACTIVE
 * and validated, granted the catalog tools this machine really has, so that a runbook prompt
 * (the shell engine: one command per line) does real work at once. The local host runs on this
 * machine, so a tool whose version command answers here is installed on it: that check is what
 * marks its ServerTool INSTALLED, as check_tool would.
 */
import { execFile } from 'node:child_process';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentRole, AgentStatus } from '../agent.entity';
import { AgentToolPermission } from '../agent-tool-permission.entity';
import { McpServer } from '../mcp-server.entity';
import { Organization } from '../organization.entity';
import { ServerTool, ServerToolStatus } from '../server-tool.entity';
import { ToolDefinition } from '../tool-definition.entity';
import { User } from '../user.entity';
import { splitCommandLine } from '../../lib/command-line';

export const DEMO_AGENT_NAME = 'runbook';

/** Catalog tools whose name is the program a runbook line starts with, and that do no harm on a developer's machine. */
export const DEMO_AGENT_TOOLS = ['git', 'python3', 'make', 'jq'] as const;

export interface DemoAgentResult {
  agentId?: string;
  /** False when the agent was there already, or when the server has another MASTER (then agentId is unset). */
  created: boolean;
  /** The demo tools found on this machine, with their versions; the others are left as they were. */
  tools: { name: string; version?: string }[];
}

/** The version `versionCommand` prints on this machine (matched by `versionRegex`), or undefined when it fails. */
export function localVersion(versionCommand: string, versionRegex: string): Promise<{ found: boolean; version?: string }> {
  const argv = splitCommandLine(versionCommand);
  if (!argv?.length) return Promise.resolve({ found: false });
  return new Promise((resolve) => {
    // A ceiling for a loaded machine (a version command answers in milliseconds when idle); a tool
    // that timed out would be left ungranted, and the first runbook refused.
    execFile(argv[0]!, argv.slice(1), { timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) return resolve({ found: false });
      const match = new RegExp(versionRegex).exec(`${stdout}${stderr}`);
      resolve({ found: true, ...(match?.[1] ? { version: match[1] } : {}) });
    });
  });
}

export async function seedDemoAgent(
  em: EntityManager,
  organizationId: string,
  serverName: string,
  adminEmail: string,
): Promise<DemoAgentResult> {
  const organization = em.getReference(Organization, organizationId);
  const server = await em.findOneOrFail(McpServer, { organization, name: serverName });
  // Built-in entries, or the organisation's own of the same name instead (hosts match tools by name).
  const entries = await em.find(ToolDefinition, { name: { $in: [...DEMO_AGENT_TOOLS] }, $or: [{ organization: null }, { organization }] });
  const byName = new Map<string, ToolDefinition>();
  for (const entry of entries) if (!byName.has(entry.name) || entry.organization) byName.set(entry.name, entry);
  const catalog = [...byName.values()];

  // Checked on every start: a tool installed or removed since the last one shows as it is now.
  const tools: DemoAgentResult['tools'] = [];
  const present: ToolDefinition[] = [];
  for (const tool of catalog) {
    const local = await localVersion(tool.versionCommand ?? `${tool.name} --version`, tool.versionRegex ?? '(\\S+)');
    if (!local.found) continue;
    present.push(tool);
    tools.push({ name: tool.name, ...(local.version ? { version: local.version } : {}) });
    const now = new Date();
    const row = (await em.findOne(ServerTool, { server, tool })) ?? em.create(ServerTool, { organization, server, tool });
    em.assign(row, {
      status: ServerToolStatus.INSTALLED,
      installedVersion: local.version,
      checkedAt: now,
      installedAt: row.installedAt ?? now,
      lastError: undefined,
    });
  }

  let agent = await em.findOne(Agent, { server, name: DEMO_AGENT_NAME });
  let created = false;
  if (!agent) {
    // One MASTER per server: a developer who made their own keeps it.
    if (await em.count(Agent, { server, role: AgentRole.MASTER })) {
      await em.flush();
      return { created: false, tools };
    }
    const admin = await em.findOne(User, { email: adminEmail });
    agent = em.create(Agent, {
      organization,
      server,
      name: DEMO_AGENT_NAME,
      displayName: 'Runbook',
      description: 'Runs a prompt of commands, one per line (the shell engine of the local host); "# heading" lines are its todo list.',
      role: AgentRole.MASTER,
      status: AgentStatus.ACTIVE,
      capabilities: ['runbook'],
      createdBy: admin ?? undefined,
      validatedBy: admin ?? undefined,
      validatedAt: new Date(),
    });
    for (const tool of present) em.create(AgentToolPermission, { organization, agent, tool, canUse: true, grantedBy: admin ?? undefined });
    created = true;
  }
  await em.flush();
  return { agentId: agent.id, created, tools };
}
