/**
 * The shell engine: a runbook agent. The prompt is a script of commands, one per line, each run
 * for real in the agent's workspace through the host's runner (only programs among the agent's
 * allowed tools, no shell: ../runner.ts), its output streamed as it comes.
 *
 *   # Check the toolchain      a heading: one todo item, holding the commands below it
 *   node --version             a command: the first failing one fails the run
 *   -git status                a leading `-` (as in a Makefile): a failure is reported, the run goes on
 *   @delegate writer: draft it a subordinate runs the prompt as a child run (./delegation.ts):
 *                              waited for, its output printed; it fails like a command
 *
 * Blank lines are ignored; commands before the first heading belong to no todo item. The todo
 * list follows the script: an item is in_progress while its commands run and completed once
 * they have; the item whose command failed the run stays in_progress, its content saying what
 * failed (the contract's todo statuses have no "failed"). A refused command fails the run even
 * with `-`: it is a permission, not a result. No tokensUsed: no model is involved.
 */
import type { TodoItem } from '../../lib/host-contract';
import { commandFailure } from '../runner';
import { Delegation } from './delegation';
import type { Engine, EngineOutcome, EngineRun } from './engine';
import { stopReason } from './script';

export const SHELL_NEEDS_COMMANDS = 'HOST_ALLOW_COMMANDS is off: the shell engine runs commands';

export interface RunbookCommand {
  /** 1-based line of the prompt. */
  line: number;
  command: string;
  /** Written with a leading `-`: a failure does not stop the run. */
  tolerateFailure: boolean;
  /** Index of its heading in `headings`, or undefined before the first heading. */
  item?: number;
  /** A `@delegate <agent>: <prompt>` line: a child run, not a command. */
  delegate?: { agent: string; prompt: string };
}

const DELEGATE_LINE = /^@delegate\s+([^\s:]+)\s*:\s*(\S.*)$/;

export interface Runbook {
  headings: string[];
  commands: RunbookCommand[];
}

export function parseRunbook(prompt: string): Runbook {
  const headings: string[] = [];
  const commands: RunbookCommand[] = [];
  prompt.split(/\r?\n/).forEach((raw, index) => {
    const text = raw.trim();
    if (!text) return;
    if (text.startsWith('#')) {
      const heading = text.replace(/^#+\s*/, '');
      if (heading) headings.push(heading);
      return;
    }
    const tolerateFailure = text.startsWith('-');
    const command = tolerateFailure ? text.slice(1).trim() : text;
    if (!command) return;
    const delegate = DELEGATE_LINE.exec(command);
    commands.push({
      line: index + 1,
      command,
      tolerateFailure,
      ...(headings.length ? { item: headings.length - 1 } : {}),
      ...(delegate ? { delegate: { agent: delegate[1]!, prompt: delegate[2]!.trim() } } : {}),
    });
  });
  return { headings, commands };
}

export function createShellEngine(settings: { allowCommands: boolean }): Engine {
  return {
    name: 'shell',
    callsFleet: true,
    check: async () => (settings.allowCommands ? undefined : SHELL_NEEDS_COMMANDS),
    run: (run) => runRunbook(parseRunbook(run.prompt), run),
  };
}

/** The todo list of a run, sent whole on every change (a `todo` message replaces the previous list). */
class TodoList {
  private readonly items: TodoItem[];
  constructor(
    headings: string[],
    private readonly run: EngineRun,
  ) {
    this.items = headings.map((content, i) => ({ id: `item-${i + 1}`, content, status: 'pending' }));
  }

  async start(): Promise<void> {
    if (this.items.length) await this.send();
  }

  /** Completes every item before `index` still open, then starts `index` (undefined: the end of the script, completing them all). */
  async reach(index: number | undefined): Promise<void> {
    const upTo = index ?? this.items.length;
    for (let i = 0; i < upTo; i++) {
      const item = this.items[i]!;
      if (item.status === 'completed') continue;
      if (item.status === 'pending') {
        // A heading with no commands of its own is passed through, so it shows as done.
        item.status = 'in_progress';
        await this.send();
      }
      item.status = 'completed';
      await this.send();
    }
    const current = index === undefined ? undefined : this.items[index];
    if (current?.status === 'pending') {
      current.status = 'in_progress';
      await this.send();
    }
  }

  async fail(index: number | undefined, reason: string): Promise<void> {
    const item = index === undefined ? undefined : this.items[index];
    if (!item) return;
    item.content = `${item.content} (failed: ${reason})`;
    await this.send();
  }

  private send(): Promise<void> {
    return this.run.emit({ type: 'todo', todos: this.items.map((item) => ({ ...item })) });
  }
}

/** What a `@delegate` line came to, said as a command's outcome: the child's output, or why it failed or was refused. */
async function runDelegation(
  step: RunbookCommand & { delegate: { agent: string; prompt: string } },
  run: EngineRun,
  delegation: Delegation,
): Promise<{ refused: string } | { refused?: undefined; output: string; failure?: string }> {
  const delegated = await delegation.delegate(step.delegate, `line-${step.line}`);
  if (run.signal.aborted) throw stopReason(run.signal);
  if (!delegated.ok && delegated.refused) return { refused: delegated.reason };
  const childOutput = delegated.result.output ?? '';
  const output = childOutput && !childOutput.endsWith('\n') ? `${childOutput}\n` : childOutput;
  if (output) await run.emit({ type: 'output', text: output });
  return { output, ...(delegated.ok ? {} : { failure: delegated.reason }) };
}

async function runRunbook(runbook: Runbook, run: EngineRun): Promise<EngineOutcome> {
  const { commands } = runbook;
  if (!commands.length) return { ok: false, error: 'the shell engine runs a prompt of commands, one per line; this prompt has none' };
  // A mistyped delegation would otherwise run as a program called `@delegate` and be refused as one.
  const misspelt = commands.find((step) => step.command.startsWith('@') && !step.delegate);
  if (misspelt)
    return {
      ok: false,
      error: `line ${misspelt.line}: \`${misspelt.command}\` is not a runbook line: a delegation is written \`@delegate <agent>: <prompt>\``,
    };
  const delegation = new Delegation(run);
  try {
    return await runSteps(runbook, run, delegation);
  } finally {
    await delegation.close();
  }
}

async function runSteps(runbook: Runbook, run: EngineRun, delegation: Delegation): Promise<EngineOutcome> {
  const { commands } = runbook;
  const todos = new TodoList(runbook.headings, run);
  await todos.start();
  let output = '';
  for (const [i, step] of commands.entries()) {
    if (run.signal.aborted) throw stopReason(run.signal);
    // Commands before the first heading come before every item: nothing to move on yet.
    if (step.item !== undefined) await todos.reach(step.item);
    const outcome = step.delegate
      ? await runDelegation({ ...step, delegate: step.delegate }, run, delegation)
      : await run.runCommand(step.command);
    // Cancel, shutdown or a limit: the host answers with the reason (a limit's error, for a limit).
    if (run.signal.aborted) throw stopReason(run.signal);
    const where = `line ${step.line}: \`${step.command}\``;
    if (outcome.refused !== undefined) {
      await todos.fail(step.item, 'refused');
      return { ok: false, error: `${where} refused: ${outcome.refused}` };
    }
    output += outcome.output;
    const failure = 'failure' in outcome ? outcome.failure : 'exitCode' in outcome ? commandFailure(outcome) : undefined;
    await run.progress(
      i + 1,
      commands.length,
      `${where} ${failure ? (step.tolerateFailure ? `failed (tolerated): ${failure}` : `failed: ${failure}`) : 'done'}`,
    );
    if (failure && !step.tolerateFailure) {
      await todos.fail(step.item, failure);
      return { ok: false, error: `${where} failed: ${failure}` };
    }
  }
  await todos.reach(undefined);
  if (run.responseSchema === undefined) return { ok: true, result: { success: true, output } };
  // Structured output from a runbook is what its commands printed, read as JSON.
  try {
    return { ok: true, result: { success: true, output, data: JSON.parse(output) as unknown } };
  } catch {
    return {
      ok: false,
      error:
        'a response schema was asked for: the shell engine answers with its commands’ output read as JSON, and that output is not JSON',
    };
  }
}
