/**
 * What an agent may run of a tool, read the same way by the control plane (grants, the
 * subordinate rule, the check before a direct tool call) and by a host (what it runs).
 *
 * A command is the words after the tool's name: `git remote add origin x` is the command
 * `remote add origin x` of the tool `git`. An entry of `allowedCommands` or `blockedCommands`
 * covers every command that starts with its words: `remote` covers `remote -v` and
 * `remote add x`, `remote add` only the latter. No `allowedCommands` means every command;
 * `blockedCommands` win over `allowedCommands`.
 */

export interface ToolScope {
  name: string;
  allowedCommands: readonly string[];
  blockedCommands: readonly string[];
}

/** The words of a permission entry or of a plain command (spaces separate, nothing else). */
export function commandWords(text: string): string[] {
  return text.split(/\s+/).filter(Boolean);
}

/** Whether the entry `prefix` covers `command` (both as words): its words start the command's. */
export function covers(prefix: readonly string[], command: readonly string[]): boolean {
  return prefix.length <= command.length && prefix.every((word, i) => word === command[i]);
}

/** The entry of `entries` that covers `command`, if one does. */
export function coveringEntry(entries: readonly string[], command: readonly string[]): string | undefined {
  return entries.find((entry) => covers(commandWords(entry), command));
}

/**
 * Why `scope` does not let the agent run `command` (the words after the tool's name; none for
 * a call of the tool as a whole), or undefined when it does.
 */
export function commandRefusal(scope: ToolScope, command: readonly string[]): string | undefined {
  const shown = [scope.name, ...command].join(' ');
  const blocked = coveringEntry(scope.blockedCommands, command);
  if (blocked !== undefined) return `"${shown}" is blocked for this agent (blocked command "${blocked}")`;
  if (scope.allowedCommands.length && coveringEntry(scope.allowedCommands, command) === undefined) {
    return `"${shown}" is not among the agent's allowed commands of ${scope.name} (${scope.allowedCommands.map((c) => `"${c}"`).join(', ')})`;
  }
  return undefined;
}

/**
 * A command line split into its arguments as a shell would for plain words and quotes
 * ('...' verbatim, "..." with \" and \\, a backslash outside quotes escaping the next
 * character), with no expansion of any kind. undefined for an unterminated quote.
 */
export function splitCommandLine(line: string): string[] | undefined {
  const args: string[] = [];
  let current = '';
  let inWord = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (/\s/.test(ch)) {
      if (inWord) args.push(current);
      current = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) return undefined;
      current += line.slice(i + 1, end);
      i = end;
    } else if (ch === '"') {
      let j = i + 1;
      for (; j < line.length && line[j] !== '"'; j++) {
        if (line[j] === '\\' && (line[j + 1] === '"' || line[j + 1] === '\\')) j++;
        current += line[j];
      }
      if (j >= line.length) return undefined;
      i = j;
    } else if (ch === '\\' && i + 1 < line.length) {
      current += line[++i];
    } else {
      current += ch;
    }
  }
  if (inWord) args.push(current);
  return args;
}

/**
 * Programs that run a command they are given as text or as arguments: checking their own name
 * would say nothing about what they start, so a host refuses them whatever `allowedTools` says.
 */
const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'fish', 'csh', 'tcsh', 'busybox']);
const LAUNCHERS = new Set([
  'env', 'xargs', 'sudo', 'doas', 'su', 'nohup', 'timeout', 'nice', 'ionice', 'setsid', 'stdbuf', 'time', 'exec', 'command',
  'eval', 'chroot', 'unshare', 'nsenter', 'watch', 'flock', 'taskset', 'strace', 'ltrace', 'script', 'parallel', 'unbuffer', 'chrt', 'prlimit',
]);

/**
 * Why a host does not start `program` at all (a shell, or a program that starts another one),
 * or undefined. The host runs no shell: `sh -c "git push"` would run git under the name sh.
 */
export function programRefusal(program: string, args: readonly string[]): string | undefined {
  if (SHELLS.has(program)) {
    const script = args.some((arg) => /^-[a-z]*c[a-z]*$/i.test(arg)) ? ' -c' : '';
    return `${program}${script} is a shell, and the host runs no shell: give the program itself (its name must be among the agent's allowed tools)`;
  }
  if (LAUNCHERS.has(program)) return `${program} starts other programs, which the host cannot check against the agent's allowed tools: give the program itself`;
  return undefined;
}
