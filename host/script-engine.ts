/**
 * The reference host's `execute_prompt` engine. There is no AI here: the prompt's directives
 * (`[steps:N]`, `[delay:MS]`, `[fail]`, `[throw]`, `[hang]`, `[ignore-cancel]`, `[json]`,
 * `[spec]{...}`, `[bytes:N]`, `[run:COMMAND]`) choose a script, so integration tests,
 * benchmarks and the dev demo get a deterministic agent that streams real MCP notifications.
 * `[run:...]` runs a real command, through the agent's allowed tools (tool-runner.ts). A host
 * with a real agent replaces this file; the tools and the server around it stay.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutePromptResult, HostEvent, TodoStatus } from '../lib/host-contract';
import type { ToolRun } from './tool-runner';

export interface PromptDirectives {
  /** The prompt with every recognised directive (and the `[spec]` JSON) removed. */
  text: string;
  steps?: number;
  delayMs?: number;
  bytes?: number;
  fail: boolean;
  throw: boolean;
  hang: boolean;
  ignoreCancel: boolean;
  json: boolean;
  spec?: Record<string, unknown>;
  /** The command lines of `[run:...]`, in prompt order. */
  runs: string[];
}

// ---------------------------------------------------------------------------------------------
// Prompt directives
// ---------------------------------------------------------------------------------------------

/** The JSON object starting at the first non-blank character from `from`, if there is one. */
function readJsonObject(text: string, from: number): { value: Record<string, unknown>; end: number } | undefined {
  let start = from;
  while (start < text.length && /\s/.test(text[start]!)) start++;
  if (text[start] !== '{') return undefined;
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) {
        try {
          const value: unknown = JSON.parse(text.slice(start, i + 1));
          if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
            return { value: value as Record<string, unknown>, end: i + 1 };
          }
        } catch {
          // Not JSON after all: the text stays part of the prompt.
        }
        return undefined;
      }
    }
  }
  return undefined;
}

export function parseDirectives(prompt: string): PromptDirectives {
  let text = prompt;
  let spec: Record<string, unknown> | undefined;
  // The spec goes first so that brackets inside its JSON strings are never read as directives.
  const specAt = text.indexOf('[spec]');
  if (specAt >= 0) {
    const json = readJsonObject(text, specAt + '[spec]'.length);
    if (json) {
      spec = json.value;
      text = `${text.slice(0, specAt).replace(/[ \t]$/, '')}${text.slice(json.end)}`;
    }
  }
  const found: Omit<PromptDirectives, 'text'> = { fail: false, throw: false, hang: false, ignoreCancel: false, json: false, spec, runs: [] };
  text = text.replace(/[ \t]?\[run:([^\]\n]+)\]/g, (_match, command: string) => {
    found.runs.push(command.trim());
    return '';
  });
  // A directive goes with the one space before it; the rest of the prompt keeps its spacing.
  text = text.replace(/[ \t]?(?:\[(steps|delay|bytes):(\d+)\]|\[(fail|throw|hang|ignore-cancel|json)\])/g, (_match, key?: string, value?: string, flag?: string) => {
    if (key === 'steps') found.steps = Number(value);
    else if (key === 'delay') found.delayMs = Number(value);
    else if (key === 'bytes') found.bytes = Number(value);
    else if (flag === 'fail') found.fail = true;
    else if (flag === 'throw') found.throw = true;
    else if (flag === 'hang') found.hang = true;
    else if (flag === 'ignore-cancel') found.ignoreCancel = true;
    else if (flag === 'json') found.json = true;
    return '';
  });
  return { ...found, text: text.trim() };
}

// ---------------------------------------------------------------------------------------------
// Scripts
// ---------------------------------------------------------------------------------------------

interface Step {
  /** The step's progress message. */
  label: string;
  events: HostEvent[];
}

function todos(plan: TodoStatus, work: TodoStatus, check: TodoStatus): HostEvent {
  return {
    type: 'todo',
    todos: [
      { id: 'plan', content: 'Plan the work', status: plan },
      { id: 'do', content: 'Do the work', status: work },
      { id: 'check', content: 'Check the result', status: check },
    ],
  };
}

function scriptFor(directives: PromptDirectives, executionId: string): Step[] {
  if (directives.bytes !== undefined) {
    return [{ label: `output of ${directives.bytes} bytes`, events: [{ type: 'output', text: 'x'.repeat(directives.bytes) }] }];
  }
  if (directives.steps !== undefined) {
    return Array.from({ length: directives.steps }, (_, i) => ({
      label: `step ${i + 1} of ${directives.steps}`,
      events: [{ type: 'output', text: `chunk ${i + 1}\n` }],
    }));
  }
  const toolCallId = `call-${executionId}-1`;
  const rest: HostEvent[] = directives.text ? [{ type: 'output', text: directives.text }] : [];
  return [
    { label: 'planning', events: [todos('pending', 'pending', 'pending'), todos('in_progress', 'pending', 'pending')] },
    {
      label: 'running a tool',
      events: [
        todos('completed', 'in_progress', 'pending'),
        { type: 'tool_call', toolCallId, name: 'shell', arguments: { command: 'echo hi' } },
        { type: 'tool_result', toolCallId, name: 'shell', result: { exitCode: 0, stdout: 'hi\n' } },
      ],
    },
    { label: 'writing', events: [{ type: 'file_change', path: 'NOTES.md', change: 'created' }, { type: 'output', text: 'Done: ' }] },
    { label: 'checking', events: [todos('completed', 'completed', 'in_progress'), ...rest] },
    { label: 'finished', events: [todos('completed', 'completed', 'completed')] },
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

/** How a script reaches the client and learns that it must stop. */
export interface ScriptIo {
  executionId: string;
  /** Pause between steps, unless the prompt says `[delay:MS]`. */
  stepDelayMs: number;
  /** Sends one `notifications/message`. */
  emit(event: HostEvent): Promise<void>;
  /** Sends `notifications/progress` (nothing when the call has no progress token). */
  progress(done: number, total: number, message: string): Promise<void>;
  /** Aborts when the script must end (cancellation or shutdown). */
  stop: AbortSignal;
  /** The error the script ends with once `stop` has aborted. */
  stopError(): Error;
  /** Runs one `[run:...]` command line, if the agent may (killed when `stop` aborts). */
  runTool(commandLine: string): Promise<ToolRun>;
}

/** A script that ran to its end, or the failure `[fail]` asked for (an isError answer). */
export type ScriptOutcome = { ok: true; result: ExecutePromptResult } | { ok: false; error: string };

/**
 * Plays the script the directives choose, step by step, with a progress notification after
 * each step's messages. Throws on `[throw]` and when stopped.
 */
export async function playScript(directives: PromptDirectives, hasResponseSchema: boolean, io: ScriptIo): Promise<ScriptOutcome> {
  if (directives.runs.length) return playRuns(directives, io);
  const { stop } = io;
  const delayMs = directives.delayMs ?? io.stepDelayMs;
  const checkStop = () => {
    if (stop.aborted) throw io.stopError();
  };

  // What [fail], [throw] and [hang] do, right after the first output chunk.
  let interrupted = false;
  const interrupt = async (): Promise<ScriptOutcome | undefined> => {
    interrupted = true;
    if (directives.fail) return { ok: false, error: 'simulated agent failure: fail directive' };
    if (directives.throw) throw new Error('host exploded');
    if (directives.hang) await waitForAbort(stop).catch(() => checkStop());
    return undefined;
  };

  const steps = scriptFor(directives, io.executionId);
  let output = '';
  for (let i = 0; i < steps.length; i++) {
    if (i > 0 && delayMs > 0) await sleep(delayMs, undefined, { signal: stop }).catch(() => checkStop());
    checkStop();
    for (const event of steps[i]!.events) {
      await io.emit(event);
      if (event.type === 'output') {
        output += event.text;
        if (!interrupted) {
          const early = await interrupt();
          if (early) return early;
        }
      }
    }
    await io.progress(i + 1, steps.length, steps[i]!.label);
  }
  if (!interrupted) {
    const early = await interrupt();
    if (early) return early;
  }
  checkStop();

  const data = directives.json || directives.spec !== undefined || hasResponseSchema ? (directives.spec ?? generatedSpec(directives.text)) : undefined;
  return { ok: true, result: { success: true, output, tokensUsed: output.length, ...(data !== undefined ? { data } : {}) } };
}

/**
 * The script of a prompt with `[run:...]`: one step per command (a `tool_call`, its output,
 * a `tool_result`), then the prompt's text. A refused or failing command ends the run as a
 * failure, after its `tool_result` says why.
 */
async function playRuns(directives: PromptDirectives, io: ScriptIo): Promise<ScriptOutcome> {
  let output = '';
  const emitOutput = async (text: string) => {
    output += text;
    await io.emit({ type: 'output', text });
  };
  for (const [i, command] of directives.runs.entries()) {
    if (io.stop.aborted) throw io.stopError();
    const toolCallId = `call-${io.executionId}-run-${i + 1}`;
    const name = command.split(/\s+/)[0]!;
    await io.emit({ type: 'tool_call', toolCallId, name, arguments: { command } });
    const run = await io.runTool(command);
    if (io.stop.aborted) throw io.stopError();
    if (run.refused !== undefined) {
      await io.emit({ type: 'tool_result', toolCallId, name: run.tool, result: { error: `refused: ${run.refused}` } });
      return { ok: false, error: `tool call refused: ${run.refused}` };
    }
    if (run.output) await emitOutput(run.output);
    await io.emit({ type: 'tool_result', toolCallId, name: run.tool, result: { exitCode: run.exitCode ?? null, ...(run.error ? { error: run.error } : {}) } });
    await io.progress(i + 1, directives.runs.length, `ran ${run.tool}`);
    if (!run.ok) return { ok: false, error: `${command} failed: ${run.error ?? 'unknown error'}` };
  }
  if (directives.text) await emitOutput(directives.text);
  return { ok: true, result: { success: true, output, tokensUsed: output.length } };
}
