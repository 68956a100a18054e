/**
 * What an agent may run of a tool, read the same way by the control plane (grants, the
 * subordinate rule, the check before a direct tool call) and by a host (what it runs).
 *
 * A command is what the tool runs: for most tools the words after its name (`jq -r .a` is the
 * command `-r .a` of `jq`); for a tool with a profile (lib/program-profiles.ts: git, docker,
 * kubectl, helm, terraform) the subcommand and its arguments, after the program's global
 * options: `git -C sub -c a=b remote add origin x` is the command `remote add origin x`. An
 * entry of `allowedCommands` or `blockedCommands` covers every command that starts with its
 * words: `remote` covers `remote -v` and `remote add x`, `remote add` only the latter. No
 * `allowedCommands` means every command; `blockedCommands` win over `allowedCommands`.
 *
 * What a profile says changes what runs or where (git's `-C` and `-c`, an alias, `submodule
 * foreach`, `ls-remote --upload-pack`, ...) runs only when the grant's `allowedCommands` name
 * it: an entry that is the option (`-C`, `-c user.name=bot`, `--upload-pack`) or a command
 * entry that reaches the subcommand (`submodule foreach`, `zz` for an alias). docs/tools.md
 * (Command scopes) says the same for people.
 */
import { PROGRAM_PROFILES, type OptionSpec, type ProgramProfile } from './program-profiles';

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

function own<T>(table: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return table && Object.hasOwn(table, key) ? table[key] : undefined;
}

export function profileOf(program: string): ProgramProfile | undefined {
  return own(PROGRAM_PROFILES, program);
}

/** Something a command line does that runs only when the grant's allowedCommands name it. */
export interface NamedNeed {
  kind: 'option' | 'command';
  /** An option: its name and, when known, its value (`['-c', 'a.b=c']`); a command: its words (`['submodule', 'foreach']`). */
  key: string[];
  /** The allowedCommands entry that would name it. */
  entry: string;
  /** Why it must be named, as a refusal says it. */
  reason: string;
}

export interface CommandReading {
  /** The subcommand and its arguments (the words after the program for a tool without a profile). */
  command: string[];
  /** The command under each of its names (`container run x` for `run x`), the command first. */
  forms: string[][];
  needs: NamedNeed[];
}

/** The words of `command` under each name the profile gives it, `command` first. */
export function commandForms(program: string, command: readonly string[]): string[][] {
  const forms = [[...command]];
  for (const group of profileOf(program)?.synonyms ?? []) {
    for (const member of group) {
      if (!covers(member, command)) continue;
      for (const other of group) if (other !== member) forms.push([...other, ...command.slice(member.length)]);
    }
  }
  return forms;
}

interface UsedOption {
  spec: OptionSpec;
  value?: string;
}

const isOptionWord = (word: string) => word.length > 1 && word.startsWith('-');

/**
 * The options of the one word at `args[i]` (and its value, which may be the next word), read
 * strictly: undefined when a letter or a name is not among `specs`.
 */
function readOptionWord(
  style: ProgramProfile['style'],
  specs: readonly OptionSpec[],
  args: readonly string[],
  i: number,
): { used: UsedOption[]; consumed: number } | { error: string } | undefined {
  const word = args[i]!;
  const valued = (
    spec: OptionSpec,
    name: string,
    attached: string | undefined,
  ): { used: UsedOption[]; consumed: number } | { error: string } => {
    if (attached !== undefined || spec.value === 'none')
      return { used: [{ spec, ...(attached !== undefined ? { value: attached } : {}) }], consumed: 1 };
    if (i + 1 >= args.length) return { error: `${name} needs a value` };
    return { used: [{ spec, value: args[i + 1]! }], consumed: 2 };
  };
  if (style === 'exact' || word.startsWith('--')) {
    const eq = word.indexOf('=');
    for (const spec of specs) {
      for (const name of spec.names) {
        if (word === name && spec.value !== 'attached') return valued(spec, name, undefined);
        // git takes `--git-dir=x` but not `--bare=x`; pflag programs take `--tls=false` too.
        if (eq === name.length && word.startsWith(name) && (spec.value !== 'none' || style === 'pflag'))
          return valued(spec, name, word.slice(eq + 1));
      }
    }
    return undefined;
  }
  // A bundle of short options (`-Dl debug`): flags, then at most one option whose value is the rest or the next word.
  const used: UsedOption[] = [];
  for (let j = 1; j < word.length; j++) {
    const name = `-${word[j]}`;
    const spec = specs.find((s) => s.names.includes(name));
    if (!spec) return undefined;
    if (spec.value === 'none') {
      used.push({ spec });
      continue;
    }
    const rest = word.slice(j + 1).replace(/^=/, '');
    const read = valued(spec, name, rest || undefined);
    return 'error' in read ? read : { used: [...used, ...read.used], consumed: read.consumed };
  }
  return { used, consumed: 1 };
}

/**
 * The options of `specs` anywhere in `args` (up to `--`), read leniently: a word that could be
 * one of them counts, even where a program would read it as a value (a refusal too many, never
 * one too few). Long names may be abbreviated when `abbreviations` (git's `--upl` is
 * `--upload-pack`); a short one counts wherever its letter is in a bundle, up to a letter of
 * `valueLetters` (which takes the rest of the word as its value).
 */
function findOptions(specs: readonly OptionSpec[], args: readonly string[], abbreviations: boolean, valueLetters = ''): UsedOption[] {
  const found: UsedOption[] = [];
  args.some((word, i) => {
    if (word === '--') return true;
    if (!isOptionWord(word)) return false;
    const next = args[i + 1];
    // The letters of a bundle that can be options: up to the first one that takes the rest as its value.
    const stop = [...word.slice(1)].findIndex((letter) => valueLetters.includes(letter));
    const bundle = stop < 0 ? word : word.slice(0, stop + 2);
    for (const spec of specs) {
      const takesNext = spec.value === 'required' && next !== undefined;
      if (word.startsWith('--')) {
        const eq = word.indexOf('=');
        const name = eq < 0 ? word : word.slice(0, eq);
        if (name.length <= 2) continue;
        if (spec.names.some((n) => n.startsWith('--') && (n === name || (abbreviations && n.startsWith(name))))) {
          found.push({ spec, ...(eq >= 0 ? { value: word.slice(eq + 1) } : takesNext ? { value: next } : {}) });
        }
        continue;
      }
      for (const name of spec.names.filter((n) => !n.startsWith('--'))) {
        if (name.length > 2) {
          // A long option with one dash (terraform's -chdir).
          if (word === name || word.startsWith(`${name}=`))
            found.push({ spec, ...(word.length > name.length ? { value: word.slice(name.length + 1) } : {}) });
          continue;
        }
        const at = bundle.indexOf(name[1]!, 1);
        if (at < 0) continue;
        // Only a leading letter has a value we can tell: `-ux` or `-u x`.
        const value = at === 1 ? (word.length > 2 ? word.slice(2).replace(/^=/, '') : takesNext ? next : undefined) : undefined;
        found.push({ spec, ...(value !== undefined ? { value } : {}) });
      }
    }
    return false;
  });
  return found;
}

function optionNeed(used: UsedOption, reason: string): NamedNeed {
  const name = used.spec.names[0]!;
  return { kind: 'option', key: used.value === undefined ? [name] : [name, used.value], entry: name, reason };
}

/**
 * How `program` reads `args` (the words after its name): the command that grants are compared
 * to, its other names, and what in it a grant must name. `{ refused }` when it cannot be read
 * (an option the profile does not know before the command, an option without its value): then
 * nobody can say which command would run.
 */
export function readCommand(program: string, args: readonly string[]): CommandReading | { refused: string } {
  const profile = profileOf(program);
  if (!profile) return { command: [...args], forms: [[...args]], needs: [] };
  const needs: NamedNeed[] = [];
  let command: string[] | undefined;
  let i = 0;
  while (i < args.length && isOptionWord(args[i]!)) {
    const word = args[i]!;
    const asCommand = own(profile.optionCommands, word);
    if (asCommand !== undefined) {
      command = [asCommand, ...args.slice(i + 1)];
      break;
    }
    const read = readOptionWord(profile.style, profile.globalOptions, args, i);
    if (!read)
      return {
        refused: `${word} is not an option of ${program} that mcp-fleet knows before the command, so it cannot tell which command would run`,
      };
    if ('error' in read) return { refused: read.error };
    for (const used of read.used)
      if (used.spec.named) needs.push(optionNeed(used, `${program}'s option ${used.spec.names[0]} ${used.spec.named}`));
    i += read.consumed;
  }
  command ??= args.slice(i);
  const forms = commandForms(program, command);
  const subcommand = command[0];

  if (subcommand !== undefined && profile.ownCommands && !profile.ownCommands.has(subcommand)) {
    needs.push({
      kind: 'command',
      key: [subcommand],
      entry: subcommand,
      reason: `${subcommand} ${profile.otherCommand ?? `is not one of ${program}'s own commands`}`,
    });
  }
  for (const path of profile.programCommands ?? []) {
    if (forms.some((form) => covers(path, form))) {
      needs.push({
        kind: 'command',
        key: [...path],
        entry: path.join(' '),
        reason: `${program} ${path.join(' ')} runs a program it is given`,
      });
    }
  }
  const rest = command.slice(1);
  if (profile.globalsAnywhere) {
    const named = profile.globalOptions.filter((spec) => spec.named);
    for (const used of findOptions(named, rest, false, profile.valueLetters))
      needs.push(optionNeed(used, `${program}'s option ${used.spec.names[0]} ${used.spec.named}`));
  }
  const specs = [...new Set(forms.flatMap((form) => (form[0] === undefined ? [] : (own(profile.commandOptions, form[0]) ?? []))))];
  for (const used of findOptions(specs, rest, profile.abbreviations ?? false, profile.valueLetters)) {
    needs.push(optionNeed(used, `${used.spec.names[0]} of ${program} ${subcommand} ${used.spec.named ?? ''}`.trim()));
  }
  return { command, forms, needs };
}

/**
 * A tool's allowedCommands in their two kinds: entries that are commands, and, for a tool
 * with a profile, entries that name an option (they start with `-`). Only command entries make
 * an allowed list: `["-C"]` alone allows every command, with `-C`.
 */
export function entryKinds(program: string, entries: readonly string[]): { commands: string[]; options: string[] } {
  const profile = profileOf(program);
  if (!profile) return { commands: [...entries], options: [] };
  const isOption = (entry: string) => entry.startsWith('-') && own(profile.optionCommands, commandWords(entry)[0]!) === undefined;
  return { commands: entries.filter((e) => !isOption(e)), options: entries.filter(isOption) };
}

/**
 * The words of a command entry as a command: an entry written the way the program takes a
 * command as an option is that command (`--version` is git's `version`, as `git --version` is).
 */
export function entryWords(program: string, entry: string): string[] {
  const words = commandWords(entry);
  const asCommand = words[0] === undefined ? undefined : own(profileOf(program)?.optionCommands, words[0]);
  return asCommand === undefined ? words : [asCommand, ...words.slice(1)];
}

/** The words of an option entry: `--git-dir=x` is `--git-dir x`, as a need's key is. */
export function optionEntryWords(entry: string): string[] {
  const [first = '', ...rest] = commandWords(entry);
  const eq = first.indexOf('=');
  return first.startsWith('--') && eq > 2 ? [first.slice(0, eq), first.slice(eq + 1), ...rest] : [first, ...rest];
}

/** Whether the grant's entries (entryKinds of `program`) name `need` for a command of `forms`. */
export function namesNeed(
  program: string,
  need: NamedNeed,
  kinds: { commands: readonly string[]; options: readonly string[] },
  forms: readonly (readonly string[])[],
): boolean {
  if (need.kind === 'option') return kinds.options.some((entry) => covers(optionEntryWords(entry), need.key));
  // A command entry names a subcommand when it reaches it: `submodule foreach`, not `submodule`.
  return kinds.commands.some((entry) => {
    const words = entryWords(program, entry);
    return covers(need.key, words) && forms.some((form) => covers(words, form));
  });
}

/**
 * Why `scope` does not let the agent run `args` (the words after the tool's name; none for a
 * call of the tool as a whole), or undefined when it does.
 */
export function commandRefusal(scope: ToolScope, args: readonly string[]): string | undefined {
  const shown = [scope.name, ...args].join(' ');
  const reading = readCommand(scope.name, args);
  if ('refused' in reading) return `"${shown}" is refused: ${reading.refused}`;
  const { forms } = reading;
  const coveredBy = (entry: string) => forms.some((form) => covers(entryWords(scope.name, entry), form));
  const blocked = scope.blockedCommands.find(coveredBy);
  if (blocked !== undefined) return `"${shown}" is blocked for this agent (blocked command "${blocked}")`;
  const kinds = entryKinds(scope.name, scope.allowedCommands);
  if (kinds.commands.length && !kinds.commands.some(coveredBy)) {
    return `"${shown}" is not among the agent's allowed commands of ${scope.name} (${kinds.commands.map((c) => `"${c}"`).join(', ')})`;
  }
  const unnamed = reading.needs.find((need) => !namesNeed(scope.name, need, kinds, forms));
  if (unnamed) return `"${shown}" is refused: ${unnamed.reason}; the grant's allowedCommands must name it ("${unnamed.entry}")`;
  return undefined;
}
