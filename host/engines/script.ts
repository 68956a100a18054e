/**
 * The script engine (the library's default, for tests and benchmarks). There is no AI here: the
 * prompt's directives (`[steps:N]`, `[delay:MS]`, `[fail]`, `[throw]`, `[hang]`,
 * `[ignore-cancel]`, `[json]`, `[spec]{...}`, `[bytes:N]`, `[run:COMMAND]`, `[ask:TEXT]`,
 * `[ask-bool:TEXT]`, `[delegate:AGENT:PROMPT]`; read by ./script-directives.ts) choose a script, so
 * tests get a deterministic run that streams real MCP notifications. It reports only what it
 * does: a todo list of its own two steps and the prompt echoed back, prefixed "script engine: ";
 * no tool call or file change it did not make, and no tokensUsed (it uses no model).
 * `[run:...]` runs a real command, through the agent's allowed tools (../runner.ts); `[ask:...]`
 * asks the client first (EngineRun.ask) and echoes the answer as output; `[delegate:...]` hands
 * a prompt to a subordinate through the fleet (./delegation.ts) and prints what it answered. The
 * engines that do work are the others (shell, openai, claude-code).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { HostEvent, TodoStatus } from '../../lib/host-contract';
import { commandFailure } from '../runner';
import { Delegation, type Delegated } from './delegation';
import type { Engine, EngineOutcome, EngineRun } from './engine';
import { parseDirectives, type PromptDirectives } from './script-directives';

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

interface Step {
  /** The step's progress message. */
  label: string;
  events: HostEvent[];
}

/** The script engine's own todo list: what it does, said as it is (it reads and echoes, nothing more). */
function todos(read: TodoStatus, echo: TodoStatus): HostEvent {
  return {
    type: 'todo',
    todos: [
      { id: 'read', content: 'Read the prompt (script engine: no AI)', status: read },
      { id: 'echo', content: 'Echo the prompt back', status: echo },
    ],
  };
}

/** What a run without directives prints: the prompt, said to come from the script engine. */
export const SCRIPT_OUTPUT_PREFIX = 'script engine: ';

function scriptFor(directives: PromptDirectives): Step[] {
  if (directives.bytes !== undefined) {
    return [{ label: `output of ${directives.bytes} bytes`, events: [{ type: 'output', text: 'x'.repeat(directives.bytes) }] }];
  }
  if (directives.steps !== undefined) {
    return Array.from({ length: directives.steps }, (_, i) => ({
      label: `step ${i + 1} of ${directives.steps}`,
      events: [{ type: 'output', text: `chunk ${i + 1}\n` }],
    }));
  }
  // No tool calls and no file changes: this engine performs none, so it reports none.
  return [
    { label: 'reading', events: [todos('pending', 'pending'), todos('in_progress', 'pending')] },
    { label: 'echoing', events: [todos('completed', 'in_progress'), { type: 'output', text: SCRIPT_OUTPUT_PREFIX }] },
    {
      label: 'finished',
      events: [...(directives.text ? [{ type: 'output' as const, text: directives.text }] : []), todos('completed', 'completed')],
    },
  ];
}

/** What `[json]` or a `responseSchema` without `[spec]` answers: a valid agent specification. */
function generatedSpec(prompt: string): Record<string, unknown> {
  return {
    name: 'generated-agent',
    displayName: 'Generated Agent',
    description: `Created from: ${prompt}`,
    role: 'WORKER',
    capabilities: ['general'],
  };
}

/** Resolves never; rejects when `signal` aborts (the only way out of a hang). */
function waitForAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    const fail = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}

// ---------------------------------------------------------------------------------------------
// Playing a script
// ---------------------------------------------------------------------------------------------

export interface ScriptSettings {
  /** Pause between steps, unless the prompt says `[delay:MS]`. */
  stepDelayMs: number;
  /** Aborts when the host closes: the only way to end a `[hang][ignore-cancel]` run. */
  shutdown: AbortSignal;
}

/** The error a run ends with once `signal` has aborted. */
export function stopReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

export function createScriptEngine(settings: ScriptSettings): Engine {
  return {
    name: 'script',
    callsFleet: true,
    check: async () => undefined,
    run: (run) => {
      const directives = parseDirectives(run.prompt);
      // A run that ignores cancel only stops when the host is shut down.
      const stop = directives.ignoreCancel ? settings.shutdown : run.signal;
      return playScript(directives, run, { stepDelayMs: settings.stepDelayMs, stop });
    },
  };
}

interface Playback {
  stepDelayMs: number;
  stop: AbortSignal;
}

/**
 * Plays the script the directives choose, step by step, with a progress notification after
 * each step's messages. Throws on `[throw]` and when stopped.
 */
async function playScript(directives: PromptDirectives, run: EngineRun, playback: Playback): Promise<EngineOutcome> {
  const answered = await playAsks(directives, run, playback.stop);
  const delegated = await playDelegations(directives, run, playback.stop);
  if (typeof delegated !== 'string') return delegated;
  const outcome = await (directives.runs.length ? playRuns(directives, run, playback.stop) : playSteps(directives, run, playback));
  // The answers and the children's outputs are part of what the run printed.
  const before = answered + delegated;
  return before && outcome.ok ? { ok: true, result: { ...outcome.result, output: before + outcome.result.output } } : outcome;
}

/**
 * Plays the `[delegate:...]` directives: all at once (each a child run, waited for), then each
 * child's output as `AGENT: OUTPUT` on a line of its own, in prompt order. Each call is a
 * tool_call `delegate` and its tool_result, the refusals included. Any delegation refused or
 * whose child did not complete fails the run, once every child has ended, with every reason,
 * as a failing `[run:...]` command does. Answers the output, or the failed outcome.
 */
async function playDelegations(directives: PromptDirectives, run: EngineRun, stop: AbortSignal): Promise<string | EngineOutcome> {
  const delegations = directives.delegations ?? [];
  if (!delegations.length) return '';
  const delegation = new Delegation(run);
  let settled: Delegated[];
  try {
    // No progress notifications of their own: the script's steps number theirs from 1, and progress must only grow.
    settled = await Promise.all(delegations.map((request, i) => delegation.delegate(request, `delegate-${i + 1}`)));
  } finally {
    await delegation.close();
  }
  if (stop.aborted) throw stopReason(stop);
  let output = '';
  const failures: string[] = [];
  for (const [i, outcome] of settled.entries()) {
    const { agent } = delegations[i]!;
    if (!outcome.ok) failures.push(`delegate to ${agent} ${outcome.refused ? 'refused' : 'failed'}: ${outcome.reason}`);
    const childOutput = outcome.ok ? outcome.result.output : outcome.refused ? undefined : outcome.result.output;
    if (!childOutput) continue;
    const text = `${agent}: ${childOutput}${childOutput.endsWith('\n') ? '' : '\n'}`;
    output += text;
    await run.emit({ type: 'output', text });
  }
  return failures.length ? { ok: false, error: failures.join('; ') } : output;
}

/** Asks the `[ask:...]` questions, one after the other, each answer echoed as an output chunk. */
async function playAsks(directives: PromptDirectives, run: EngineRun, stop: AbortSignal): Promise<string> {
  let output = '';
  for (const question of directives.asks ?? []) {
    if (stop.aborted) throw stopReason(stop);
    const answer = await run.ask(question.text, question.kind === 'bool' ? YES_NO_SCHEMA : TEXT_ANSWER_SCHEMA);
    if (stop.aborted) throw stopReason(stop);
    const text = `${answerLine(question.text, answer)}\n`;
    output += text;
    await run.emit({ type: 'output', text });
  }
  return output;
}

const TEXT_ANSWER_SCHEMA = {
  type: 'object',
  properties: { answer: { type: 'string' } },
  required: ['answer'],
} as const satisfies Parameters<EngineRun['ask']>[1];
const YES_NO_SCHEMA = { type: 'object', properties: { yes: { type: 'boolean' } }, required: ['yes'] } as const satisfies Parameters<
  EngineRun['ask']
>[1];

/** `asked "TEXT": accept {"answer":"..."}`, or the action and the host's reason. */
export function answerLine(question: string, answer: Awaited<ReturnType<EngineRun['ask']>>): string {
  const content = answer.content !== undefined ? ` ${JSON.stringify(answer.content)}` : '';
  const reason = answer.reason !== undefined ? ` (${answer.reason})` : '';
  return `asked "${question}": ${answer.action}${content}${reason}`;
}

async function playSteps(directives: PromptDirectives, run: EngineRun, playback: Playback): Promise<EngineOutcome> {
  const { stop } = playback;
  const delayMs = directives.delayMs ?? playback.stepDelayMs;
  const checkStop = () => {
    if (stop.aborted) throw stopReason(stop);
  };

  // What [fail], [throw] and [hang] do, right after the first output chunk.
  let interrupted = false;
  const interrupt = async (): Promise<EngineOutcome | undefined> => {
    interrupted = true;
    if (directives.fail) return { ok: false, error: 'script engine: the [fail] directive fails this run' };
    if (directives.throw) throw new Error('host exploded');
    if (directives.hang) await waitForAbort(stop).catch(() => checkStop());
    return undefined;
  };

  const steps = scriptFor(directives);
  let output = '';
  for (let i = 0; i < steps.length; i++) {
    if (i > 0 && delayMs > 0) await sleep(delayMs, undefined, { signal: stop }).catch(() => checkStop());
    checkStop();
    for (const event of steps[i]!.events) {
      await run.emit(event);
      if (event.type === 'output') {
        output += event.text;
        if (!interrupted) {
          const early = await interrupt();
          if (early) return early;
        }
      }
    }
    await run.progress(i + 1, steps.length, steps[i]!.label);
  }
  if (!interrupted) {
    const early = await interrupt();
    if (early) return early;
  }
  checkStop();

  const data =
    directives.json || directives.spec !== undefined || run.responseSchema !== undefined
      ? (directives.spec ?? generatedSpec(directives.text))
      : undefined;
  // No tokensUsed: the script engine uses no model.
  return { ok: true, result: { success: true, output, ...(data !== undefined ? { data } : {}) } };
}

/**
 * The script of a prompt with `[run:...]`: one step per command, run for real through the
 * host's runner (which reports the tool_call, its output and the tool_result), then the
 * prompt's text. A refused or failing command ends the run as a failure.
 */
async function playRuns(directives: PromptDirectives, run: EngineRun, stop: AbortSignal): Promise<EngineOutcome> {
  let output = '';
  for (const [i, command] of directives.runs.entries()) {
    if (stop.aborted) throw stopReason(stop);
    const outcome = await run.runCommand(command);
    if (stop.aborted) throw stopReason(stop);
    if (outcome.refused !== undefined) return { ok: false, error: `tool call refused: ${outcome.refused}` };
    output += outcome.output;
    await run.progress(i + 1, directives.runs.length, `ran ${command.split(/\s+/)[0]}`);
    const failure = commandFailure(outcome);
    if (failure) return { ok: false, error: `${command} failed: ${failure}` };
  }
  if (directives.text) {
    output += directives.text;
    await run.emit({ type: 'output', text: directives.text });
  }
  return { ok: true, result: { success: true, output } };
}
