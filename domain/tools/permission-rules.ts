import {
  commandForms,
  covers,
  entryKinds,
  entryWords,
  namesNeed,
  optionEntryWords,
  readCommand,
  type NamedNeed,
} from '../../lib/tool-commands';

/**
 * The subordinate rule for commands: what a subordinate may run of a tool must be within what
 * its supervisor may run of it (lib/tool-commands.ts says how entries cover commands, which
 * entries name options, and which subcommands must be named). These functions are pure;
 * permission-commands.ts applies them to rows.
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

/** The longer of two entries when one covers the other: the commands both reach. */
function overlap(a: readonly string[], b: readonly string[]): string | undefined {
  if (covers(a, b)) return b.join(' ');
  if (covers(b, a)) return a.join(' ');
  return undefined;
}

const defined = <T>(value: T | undefined): value is T => value !== undefined;

function unique(entries: readonly string[]): string[] {
  return [...new Set(entries)];
}

/** The rules of one tool: its entries under each name of their command (git's `stage` is `add`). */
function rulesOf(tool: string) {
  const words = (entry: string) => entryWords(tool, entry);
  const forms = (entry: string) => commandForms(tool, words(entry));
  return {
    forms,
    /** Whether an entry of `entries` covers the commands of `entry`, under one of their names. */
    coveredBy: (entries: readonly string[], entry: string) => forms(entry).some((form) => entries.some((e) => covers(words(e), form))),
    /** The commands both entries reach, under each name of the first. */
    overlaps: (entry: string, other: string) =>
      forms(entry)
        .map((form) => overlap(form, words(other)))
        .filter(defined),
    /** What an allowed command entry reaches that a grant must name (an alias, `submodule foreach`). */
    needs: (entry: string): NamedNeed[] => {
      const reading = readCommand(tool, words(entry));
      return 'refused' in reading ? [] : reading.needs.filter((need) => need.kind === 'command');
    },
  };
}

/** Whether option entry `a` names every option value `b` names. */
const namesOption = (a: string, b: string) => covers(optionEntryWords(a), optionEntryWords(b));

/**
 * Where `sub` lets the agent run a command of `tool` that `sup` does not let its supervisor
 * run, or undefined when `sub` is within `sup`.
 */
export function scopeExcess(tool: string, sub: CommandScope, sup: CommandScope): ScopeExcess | undefined {
  const rules = rulesOf(tool);
  const mine = entryKinds(tool, sub.allowedCommands);
  const theirs = entryKinds(tool, sup.allowedCommands);
  const blockedForSub = (entry: string) => rules.coveredBy(sub.blockedCommands, entry);
  for (const option of mine.options) {
    if (!theirs.options.some((entry) => namesOption(entry, option))) {
      return {
        field: 'allowedCommands',
        command: option,
        message: `the supervisor's allowed commands of ${tool} do not name the option "${option}": this agent may not have it either`,
      };
    }
  }
  if (theirs.commands.length) {
    const listed = theirs.commands.map((c) => `"${c}"`).join(', ');
    if (!mine.commands.length) {
      return {
        field: 'allowedCommands',
        message: `the supervisor may run only ${listed} of ${tool}: list the allowed commands, within those`,
      };
    }
    for (const command of mine.commands) {
      if (!rules.coveredBy(theirs.commands, command) && !blockedForSub(command)) {
        return {
          field: 'allowedCommands',
          command,
          message: `"${tool} ${command}" is not within the supervisor's allowed commands of ${tool} (${listed})`,
        };
      }
    }
  }
  for (const command of mine.commands) {
    if (blockedForSub(command)) continue;
    const unnamed = rules.needs(command).find((need) => !namesNeed(tool, need, theirs, rules.forms(command)));
    if (unnamed) {
      return {
        field: 'allowedCommands',
        command,
        message: `"${tool} ${unnamed.entry}" must be named to run, and the supervisor's allowed commands of ${tool} do not name it`,
      };
    }
  }
  for (const blocked of sup.blockedCommands) {
    if (blockedForSub(blocked)) continue;
    // The commands under `blocked` that the subordinate's allowed list reaches (all of them without a list).
    const reached = mine.commands.length ? mine.commands.flatMap((a) => rules.overlaps(a, blocked)) : [blocked];
    if (reached.some((command) => !blockedForSub(command))) {
      return {
        field: 'blockedCommands',
        command: blocked,
        message: `"${tool} ${blocked}" is blocked for the supervisor: block it for this agent too`,
      };
    }
  }
  return undefined;
}

/**
 * `sub` narrowed to what `sup` allows: the allowed commands both lists reach, the options both
 * name, without the subcommands the supervisor does not name, and the supervisor's blocks
 * added. undefined when no allowed command is left (an empty allowed list would mean every
 * command): the subordinate loses the tool.
 */
export function trimScope(tool: string, sub: CommandScope, sup: CommandScope): CommandScope | undefined {
  const rules = rulesOf(tool);
  const mine = entryKinds(tool, sub.allowedCommands);
  const theirs = entryKinds(tool, sup.allowedCommands);
  const options = new Set(mine.options);
  const namedBySup = (command: string) => rules.needs(command).every((need) => namesNeed(tool, need, theirs, rules.forms(command)));
  const narrowed = (entry: string): string[] => {
    if (options.has(entry)) return theirs.options.flatMap((p) => (namesOption(p, entry) ? [entry] : namesOption(entry, p) ? [p] : []));
    return (theirs.commands.length ? theirs.commands.flatMap((p) => rules.overlaps(entry, p)) : [entry]).filter(namedBySup);
  };
  let allowed = unique(sub.allowedCommands.flatMap(narrowed));
  if (theirs.commands.length || mine.commands.length) {
    const commands = mine.commands.length
      ? allowed.filter((entry) => !entryKinds(tool, [entry]).options.length)
      : theirs.commands.filter(namedBySup);
    if (!commands.length) return undefined;
    if (!mine.commands.length) allowed = unique([...allowed, ...commands]);
  }
  const added = sup.blockedCommands.filter((b) => !rules.coveredBy(sub.blockedCommands, b));
  return { allowedCommands: allowed, blockedCommands: unique([...sub.blockedCommands, ...added]) };
}

export function sameScope(a: CommandScope, b: CommandScope): boolean {
  const same = (x: readonly string[], y: readonly string[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.allowedCommands, b.allowedCommands) && same(a.blockedCommands, b.blockedCommands);
}
