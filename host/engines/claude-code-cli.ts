/**
 * How the claude-code engine calls the Claude Code CLI: its settings (HOST_CLAUDE_*), the
 * command line of one run (print mode, stream-json, the agent's permissions as the CLI's
 * permission rules, which claude-code-permissions.ts makes), the environment the CLI gets, and
 * how a structured answer is read back.
 */
import path from 'node:path';
import { z } from 'zod';
import type { AllowedToolScope, FleetAccess } from '../../lib/host-contract';
import { agentEnvironment } from '../runner';
import { parseNetworkEntry, type NetworkEntry } from '../sandbox-network';
import type { Permissions } from './claude-code-permissions';
import type { EngineRun } from './engine';

export interface ClaudeCodeSettings {
  /** HOST_CLAUDE_PATH, else `claude` looked up on PATH. */
  command: string;
  /** HOST_CLAUDE_MODEL → --model (the CLI's default when unset). */
  model?: string;
  /** HOST_CLAUDE_MAX_TURNS → --max-turns (no limit but the run's wall time when unset). */
  maxTurns?: number;
}

export function claudeCodeSettings(env: NodeJS.ProcessEnv): ClaudeCodeSettings {
  const command = env.HOST_CLAUDE_PATH || 'claude';
  // A relative path would be looked up in the agent's workspace, where the agent writes.
  if (command.includes('/') && !path.isAbsolute(command))
    throw new Error(`HOST_CLAUDE_PATH must be an absolute path or a bare name, got "${command}"`);
  const maxTurns = env.HOST_CLAUDE_MAX_TURNS ? Number(env.HOST_CLAUDE_MAX_TURNS) : undefined;
  if (maxTurns !== undefined && (!Number.isInteger(maxTurns) || maxTurns < 1))
    throw new Error(`HOST_CLAUDE_MAX_TURNS must be a positive integer, got "${env.HOST_CLAUDE_MAX_TURNS}"`);
  return {
    command,
    ...(env.HOST_CLAUDE_MODEL ? { model: env.HOST_CLAUDE_MODEL } : {}),
    ...(maxTurns !== undefined ? { maxTurns } : {}),
  };
}

/** The name of the fleet's endpoint among the CLI's MCP servers: its tools are `mcp__fleet__<tool>`. */
export const FLEET_MCP_SERVER = 'fleet';

/** The fleet's tools the CLI may call without asking (in print mode nobody could answer). */
export const FLEET_TOOLS = [`mcp__${FLEET_MCP_SERVER}__delegate`, `mcp__${FLEET_MCP_SERVER}__list_subordinates`] as const;

/**
 * The `--mcp-config` of a run with fleet access (delegation): the fleet's endpoint as an HTTP MCP
 * server with the run's token. A secret: written to a file only the CLI's user reads, outside
 * the workspace (claude-code.ts), never into argv, where every user of the machine sees it.
 */
export function fleetMcpConfig(fleet: FleetAccess): { mcpServers: Record<string, unknown> } {
  return {
    mcpServers: { [FLEET_MCP_SERVER]: { type: 'http', url: fleet.url, headers: { Authorization: `Bearer ${fleet.token}` } } },
  };
}

/**
 * Where the CLI reaches the fleet from its sandbox: the endpoint's host and port. An address
 * literal (a fleet on loopback, in development) is allowed as such entries are.
 */
export function fleetNetwork(fleet: FleetAccess): NetworkEntry[] {
  try {
    const url = new URL(fleet.url);
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return [parseNetworkEntry(`${url.hostname}:${port}`)];
  } catch {
    // Not a URL the proxy can name: the CLI says it cannot reach the server.
    return [];
  }
}

/** What the CLI is told beside the prompt: who it is working for, where, and what it may run. */
export function systemPrompt(run: EngineRun, programs: readonly string[]): string {
  const parts = [
    `You are the agent "${run.agentName}" run by mcp-fleet. Work only in the current directory, which is your workspace and is kept between your runs.`,
    programs.length
      ? `The programs you may run with Bash: ${programs.join(', ')}. Other commands are refused.`
      : 'You may not run shell commands: work with the file tools only.',
  ];
  if (run.fleet) {
    parts.push(
      `You lead other agents: the MCP tools ${FLEET_TOOLS[1]} (who they are) and ${FLEET_TOOLS[0]} (hand one a prompt as a run of its own and wait for its answer) reach them. Hand them the work that fits them.`,
    );
  }
  if (run.context && Object.keys(run.context).length) parts.push(`Context of this run (JSON): ${JSON.stringify(run.context)}`);
  if (run.responseSchema) {
    parts.push(
      'Your final message must be only a JSON value (no prose, no code fence) that satisfies this JSON Schema: ' +
        JSON.stringify(run.responseSchema),
    );
  }
  return parts.join('\n');
}

/**
 * The CLI's arguments for one run. The prompt comes after `--`, so no prompt reads as an option.
 * `mcpConfigFile`: the file of fleetMcpConfig, for a run with fleet access; its tools are then allowed.
 */
export function claudeArguments(
  run: EngineRun,
  settings: ClaudeCodeSettings,
  permissions: Permissions,
  programs: readonly string[],
  mcpConfigFile?: string,
): string[] {
  return [
    '-p',
    '--output-format',
    'stream-json',
    // Print mode writes stream-json only with --verbose.
    '--verbose',
    // `default`, whatever a settings file says: a tool use no rule allows is denied, as nobody can approve it.
    '--permission-mode',
    'default',
    ...(mcpConfigFile ? ['--mcp-config', mcpConfigFile] : []),
    '--allowedTools',
    ...permissions.allowed,
    ...(mcpConfigFile ? FLEET_TOOLS : []),
    '--disallowedTools',
    ...permissions.disallowed,
    '--append-system-prompt',
    systemPrompt(run, programs),
    ...(settings.model ? ['--model', settings.model] : []),
    ...(settings.maxTurns ? ['--max-turns', String(settings.maxTurns)] : []),
    '--',
    run.prompt,
  ];
}

/**
 * The names of the host's variables the CLI gets, besides what every agent command gets
 * (agentEnvironment: PATH, locale; HOME is the CLI's own, see cliEnvironment). The CLI needs its credentials and
 * its provider settings; the host's own (HOST_TOKEN, HOST_*) never leave it. What the CLI gets
 * its Bash commands get too: the agent can read its own key, as any program holding one can.
 */
function passedToCli(name: string, hostEnv: NodeJS.ProcessEnv): boolean {
  if (name.startsWith('HOST_')) return false;
  if (/^(ANTHROPIC_|CLAUDE_CODE_)/.test(name) || name === 'CLAUDE_CONFIG_DIR') return true;
  if (/^(HTTPS?_PROXY|NO_PROXY|NODE_EXTRA_CA_CERTS)$/i.test(name)) return true;
  // A cloud provider's credentials only when the operator chose that provider for the CLI.
  if (hostEnv.CLAUDE_CODE_USE_BEDROCK && name.startsWith('AWS_')) return true;
  if (hostEnv.CLAUDE_CODE_USE_VERTEX && (name.startsWith('GOOGLE_') || name.startsWith('CLOUD_ML_') || name.startsWith('VERTEX_REGION')))
    return true;
  return false;
}

/** The CLI's switches for what it sends beside the API (usage telemetry, error reports, update checks). */
export const QUIET_CLI = ['DISABLE_TELEMETRY', 'DISABLE_ERROR_REPORTING', 'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC'] as const;

/**
 * The CLI's environment. `home` is the CLI's own HOME, outside the workspace: the CLI writes
 * `.claude.json` (its machine and user ids) and its full transcript under `.claude/` there,
 * which in the workspace the agent, later runs and `git status` would see. Its telemetry,
 * error reports and other traffic beside the API stay off unless the operator sets them.
 */
export function cliEnvironment(workspace: string, hostEnv: NodeJS.ProcessEnv, home: string): NodeJS.ProcessEnv {
  const env = agentEnvironment(workspace, hostEnv);
  env.HOME = home;
  for (const [name, value] of Object.entries(hostEnv)) if (value !== undefined && passedToCli(name, hostEnv)) env[name] = value;
  // The agent's run is no time for the CLI to replace itself.
  env.DISABLE_AUTOUPDATER ??= '1';
  for (const name of QUIET_CLI) env[name] = hostEnv[name] ?? '1';
  return env;
}

/**
 * The hosts the CLI itself must reach from its sandbox: its provider's API (the host of
 * ANTHROPIC_BASE_URL, else api.anthropic.com; Bedrock's or Vertex's when the operator chose
 * one). The agent's own allowlist comes on top.
 */
export function cliNetwork(hostEnv: NodeJS.ProcessEnv): NetworkEntry[] {
  if (hostEnv.CLAUDE_CODE_USE_BEDROCK) return [parseNetworkEntry('*.amazonaws.com')];
  if (hostEnv.CLAUDE_CODE_USE_VERTEX) return [parseNetworkEntry('*.googleapis.com')];
  let api = 'api.anthropic.com';
  try {
    if (hostEnv.ANTHROPIC_BASE_URL) {
      const url = new URL(hostEnv.ANTHROPIC_BASE_URL);
      api = url.port ? `${url.hostname}:${url.port}` : url.hostname;
    }
  } catch {
    // Not a URL: the CLI will say so itself; its default API stays reachable.
  }
  return [parseNetworkEntry(api)];
}

/** The programs the agent may run (the names of its granted tools), none when the host runs no commands. */
export function programNames(scopes: readonly AllowedToolScope[], allowCommands: boolean): string[] {
  return allowCommands ? scopes.filter((scope) => !scope.requiresApproval).map((scope) => scope.name) : [];
}

/** The JSON value a final answer holds: all of it, or the content of a ```json fence in it. */
function jsonIn(text: string): { value: unknown } | undefined {
  const candidates = [text.trim()];
  const fenced = /```(?:json)?\s*\n([\s\S]*?)\n\s*```/.exec(text);
  if (fenced) candidates.push(fenced[1]!.trim());
  for (const candidate of candidates) {
    try {
      return { value: JSON.parse(candidate) as unknown };
    } catch {
      // Try the next reading.
    }
  }
  return undefined;
}

/** The answer's `data`, checked against the schema, or why it is not an answer to it. */
export function structuredAnswer(text: string, schema: Record<string, unknown>): { data: unknown } | { error: string } {
  const found = jsonIn(text);
  if (!found)
    return {
      error: `Claude Code's answer is not the JSON the response schema asks for: ${text.length > 200 ? `${text.slice(0, 200)}…` : text || '(empty)'}`,
    };
  let validator: z.ZodType;
  try {
    validator = z.fromJSONSchema(schema as Parameters<typeof z.fromJSONSchema>[0]);
  } catch (error) {
    return { error: `the response schema cannot be read: ${(error as Error).message}` };
  }
  const parsed = validator.safeParse(found.value);
  if (parsed.success) return { data: found.value };
  const issues = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(answer)'}: ${issue.message}`).join('; ');
  return { error: `Claude Code's answer does not match the response schema: ${issues}` };
}
