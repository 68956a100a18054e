import { commandWords, covers, coveringEntry } from '../../lib/tool-commands';

/**
 * The subordinate rule for commands: what a subordinate may run of a tool must be within what
 * its supervisor may run of it (lib/tool-commands.ts says how entries cover commands). These
 * functions are pure; permission-commands.ts applies them to rows.
 */

export interface CommandScope {
  allowedCommands: readonly string[];
  blockedCommands: readonly string[];
}

export interface ScopeExcess {
  field: 'allowedCommands' | 'blockedCommands';
  /** The entry at fault: the subordinate's allowed command, or the supervisor's blocked one. */
  command?: string;
  message: string;
}

const words = commandWords;

/** The longer of two entries when one covers the other: the commands both reach. */
function overlap(a: string, b: string): string | undefined {
  if (covers(words(a), words(b))) return b;
  if (covers(words(b), words(a))) return a;
  return undefined;
}

/**
 * Where `sub` lets the agent run a command of `tool` that `sup` does not let its supervisor
 * run, or undefined when `sub` is within `sup`.
 */
export function scopeExcess(tool: string, sub: CommandScope, sup: CommandScope): ScopeExcess | undefined {
  const blockedForSub = (entry: string) => coveringEntry(sub.blockedCommands, words(entry)) !== undefined;
  if (sup.allowedCommands.length) {
    const theirs = sup.allowedCommands.map((c) => `"${c}"`).join(', ');
    if (!sub.allowedCommands.length) {
      return { field: 'allowedCommands', message: `the supervisor may run only ${theirs} of ${tool}: list the allowed commands, within those` };
    }
    for (const command of sub.allowedCommands) {
      if (coveringEntry(sup.allowedCommands, words(command)) === undefined && !blockedForSub(command)) {
        return { field: 'allowedCommands', command, message: `"${tool} ${command}" is not within the supervisor's allowed commands of ${tool} (${theirs})` };
      }
    }
  }
  for (const blocked of sup.blockedCommands) {
    if (blockedForSub(blocked)) continue;
    // The commands under `blocked` that the subordinate's allowed list reaches (all of them without a list).
    const reached = sub.allowedCommands.length ? sub.allowedCommands.map((a) => overlap(a, blocked)).filter((w) => w !== undefined) : [blocked];
    if (reached.some((command) => !blockedForSub(command))) {
      return { field: 'blockedCommands', command: blocked, message: `"${tool} ${blocked}" is blocked for the supervisor: block it for this agent too` };
    }
  }
  return undefined;
}

function unique(entries: readonly string[]): string[] {
  return [...new Set(entries)];
}

/**
 * `sub` narrowed to what `sup` allows: the allowed commands both lists reach, and the
 * supervisor's blocks added. undefined when nothing is left (an empty allowed list would mean
 * every command): the subordinate loses the tool.
 */
export function trimScope(sub: CommandScope, sup: CommandScope): CommandScope | undefined {
  let allowed = [...sub.allowedCommands];
  if (sup.allowedCommands.length) {
    allowed = sub.allowedCommands.length
      ? unique(sub.allowedCommands.flatMap((a) => sup.allowedCommands.map((p) => overlap(a, p)).filter((w) => w !== undefined)))
      : [...sup.allowedCommands];
    if (!allowed.length) return undefined;
  }
  const added = sup.blockedCommands.filter((b) => coveringEntry(sub.blockedCommands, words(b)) === undefined);
  return { allowedCommands: allowed, blockedCommands: unique([...sub.blockedCommands, ...added]) };
}

export function sameScope(a: CommandScope, b: CommandScope): boolean {
  const same = (x: readonly string[], y: readonly string[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.allowedCommands, b.allowedCommands) && same(a.blockedCommands, b.blockedCommands);
}
