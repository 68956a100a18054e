/**
 * How a host reads the command line of an agent's tool call (no shell: quotes and backslashes
 * only), and the programs it never starts, whatever the agent's allowed tools say. The control
 * plane splits a line the same way (domain/tools/allowed-tools.ts), so both see the same
 * program and arguments; lib/tool-commands.ts then says whether the grant covers them.
 */

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
  'env',
  'xargs',
  'sudo',
  'doas',
  'su',
  'nohup',
  'timeout',
  'nice',
  'ionice',
  'setsid',
  'stdbuf',
  'time',
  'exec',
  'command',
  'eval',
  'chroot',
  'unshare',
  'nsenter',
  'watch',
  'flock',
  'taskset',
  'strace',
  'ltrace',
  'script',
  'parallel',
  'unbuffer',
  'chrt',
  'prlimit',
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
  if (LAUNCHERS.has(program))
    return `${program} starts other programs, which the host cannot check against the agent's allowed tools: give the program itself`;
  return undefined;
}
