/**
 * How the claude-code engine calls the Claude Code CLI: its settings (HOST_CLAUDE_*), the
 * command line of one run (print mode, stream-json, the agent's permissions as the CLI's
 * permission rules), the environment the CLI gets, and how a structured answer is read back.
 */
import path from 'node:path';
import { z } from 'zod';
import type { AllowedToolScope, FleetAccess } from '../../lib/host-contract';
import { entryKinds, profileOf } from '../../lib/tool-commands';
import { agentEnvironment } from '../runner';
import { parseNetworkEntry, type NetworkEntry } from '../sandbox-network';
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

/**
 * The CLI's own tools the agent always has, each kept to the working directory (the
 * workspace) by its rule: `./**` is every path under the CLI's working directory. A bare
 * `Read` or `Edit` would allow every path on the machine. Reading and searching inside the
 * working directory needs no rule; outside it, the CLI asks, and in print mode nobody can
 * answer, so it is denied. The task tools are how the CLI (2.1) keeps its plan; it has no
 * `TodoWrite` or `MultiEdit` any more (its `system` init line lists its tools).
 */
export const FILE_TOOLS = [
  'Read(./**)',
  'Edit(./**)',
  'Write(./**)',
  'NotebookEdit(./**)',
  'TaskCreate',
  'TaskUpdate',
  'TaskList',
  'TaskGet',
] as const;

/**
 * Tools the agent never has: the network is reached only through programs it was granted,
 * and with no granted program there is no shell at all.
 */
const NETWORK_TOOLS = ['WebFetch', 'WebSearch'];

// A rule is `Bash(<words> *)`: a name or command with parentheses, a comma, a glob or a quote
// would change what the rule covers, so such an entry is refused rather than passed on.
const SAFE_NAME = /^[\w.@+-]+$/;
const SAFE_COMMAND = /^[\w.@+\-/=: ]+$/;

export interface Permissions {
  allowed: string[];
  disallowed: string[];
}

/**
 * The agent's allowedTools as the CLI's permission rules, in the form its documentation gives
 * (`Bash(git *)`; the older `Bash(git:*)` means the same): every granted program as
 * `Bash(<name> *)`, or one rule per allowed command (`Bash(<name> <command> *)`); blocked
 * commands as disallowed rules, which win in the CLI as they do in the host's own checks,
 * also behind any global option (`Bash(git -* push *)`, see blockedRules).
 * A string is a refusal: an entry no rule can say exactly. A tool granted with
 * requiresApproval is disallowed whole: the CLI runs its commands itself, so the host could
 * not ask before each one, and an approval gate that does not ask must not let them through.
 */
export function permissionRules(scopes: readonly AllowedToolScope[], allowCommands: boolean): Permissions | string {
  const allowed: string[] = [...FILE_TOOLS];
  const disallowed: string[] = [...NETWORK_TOOLS];
  const programs = allowCommands ? scopes : [];
  for (const scope of programs) {
    if (!SAFE_NAME.test(scope.name)) return `the tool name "${scope.name}" cannot be given to Claude Code as a permission rule`;
    for (const command of [...scope.allowedCommands, ...scope.blockedCommands]) {
      if (!SAFE_COMMAND.test(command))
        return `the command "${command}" of ${scope.name} cannot be given to Claude Code as a permission rule`;
    }
    if (scope.requiresApproval) {
      disallowed.push(`Bash(${scope.name} *)`, `Bash(${scope.name})`);
      continue;
    }
    const words = (command: string) => command.trim().split(/\s+/).join(' ');
    // Entries that name an option (git's `-C`) are no commands: they only lift that option's rule below.
    const { commands, options } = entryKinds(scope.name, scope.allowedCommands);
    // `Bash(git status *)` also matches `git status` alone.
    if (commands.length) allowed.push(...commands.map((command) => `Bash(${scope.name} ${words(command)} *)`));
    else allowed.push(`Bash(${scope.name} *)`);
    disallowed.push(...scope.blockedCommands.flatMap((command) => blockedRules(scope.name, words(command))));
    // No space before the `*`: `Bash(git --git-dir*)` denies `--git-dir=x` as well as `--git-dir x`.
    disallowed.push(...unnamedGlobalOptions(scope.name, options).map((option) => `Bash(${scope.name} ${option}*)`));
  }
  if (!programs.length) disallowed.push('Bash');
  return { allowed, disallowed };
}

/**
 * The command line `words`, with more words after it or alone: as disallowed rules, both
 * spellings, so a deny does not hang on how the CLI reads a trailing ` *`.
 */
function prefixRules(words: string): string[] {
  return [`Bash(${words} *)`, `Bash(${words})`];
}

/**
 * A blocked command as the CLI's rules: itself, and (for a program whose global options the
 * host knows, lib/program-profiles.ts) behind any of them, as the host's own command check
 * finds the command after the global options: `git --no-pager push`, `git -c color.ui=never
 * push` and `git -C . push` all match `Bash(git -* push *)` or `Bash(git -* push)`. The
 * CLI's `*` matches any characters, so these also deny a rarer line with an option first and
 * the word later (`git --no-pager log --grep push`): refused, never let through.
 */
function blockedRules(program: string, command: string): string[] {
  const behindOptions = profileOf(program)?.globalOptions.length ? prefixRules(`${program} -* ${command}`) : [];
  return [...prefixRules(`${program} ${command}`), ...behindOptions];
}

/**
 * The spellings of the program's global options that change what runs or where and that no
 * option entry names by itself (lib/program-profiles.ts): the CLI matches rules as prefixes,
 * so `git -C /elsewhere status` would pass `Bash(git *)`. An
 * entry naming one value (`-c user.name=bot`) is no prefix rule: that option stays denied.
 * Aliases and options within a command (`--upload-pack`) cannot be said as prefixes: the
 * CLI's rules do not cover them (docs/host-protocol.md says so).
 */
function unnamedGlobalOptions(program: string, optionEntries: readonly string[]): string[] {
  const named = new Set(optionEntries.filter((entry) => !entry.includes(' ') && !entry.includes('=')));
  const specs = profileOf(program)?.globalOptions.filter((spec) => spec.named && !spec.names.some((name) => named.has(name))) ?? [];
  return [...new Set(specs.flatMap((spec) => spec.names))];
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
