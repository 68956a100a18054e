/**
 * The agent's allowedTools as the Claude Code CLI's permission rules (its `--allowedTools` and
 * `--disallowedTools`): the file tools kept to the workspace, every granted program or allowed
 * command as a `Bash(git *)` rule, blocked commands denied also behind a program's global
 * options (`git --no-pager push`), global options no entry names denied, and an entry no rule
 * can say exactly refused. The claude-code engine (claude-code.ts) passes them on through the
 * CLI's command line (claude-code-cli.ts).
 */
import type { AllowedToolScope } from '../../lib/host-contract';
import { entryKinds, profileOf } from '../../lib/tool-commands';

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

/** The CLI's permission rules for one run: its `--allowedTools` and its `--disallowedTools`. */
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
