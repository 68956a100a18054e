/**
 * Reads the Claude Code CLI's `--output-format stream-json` output (one JSON message per line:
 * `system` init, `assistant` and `user` turns whose content blocks carry text, tool uses and
 * tool results, and a final `result`) and turns it into the host contract's events.
 *
 * What the CLI says itself is not the agent's: an API error comes as an assistant message of
 * the model `<synthetic>` before a `result` with `is_error` (the run fails with it, it is not
 * output), and its retries of a failing API as `system`/`api_retry` lines (progress). Its plan is
 * kept with the task tools (TaskCreate, TaskUpdate; TodoWrite in CLIs before 2.1): `todo` events.
 *
 * The CLI's stream is its own documented format, which grows: a message or content block of a
 * type this file does not map (thinking, partial stream events, status notices) is skipped,
 * but a line that is not JSON, or a message of a mapped type missing its mapped fields, is a
 * malformed stream and fails the run — a silent skip there would drop work the agent did.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import { z } from 'zod';
import type { HostEvent, TodoItem, TodoStatus } from '../../lib/host-contract';

/** A tool result's text is cut to this many characters in its event (the CLI keeps the rest). */
export const TOOL_RESULT_CHARS = 4000;

/** The CLI's file-editing tools, and the input field that names the file each one writes. */
const FILE_EDIT_TOOLS: Readonly<Record<string, string>> = {
  Write: 'file_path',
  Edit: 'file_path',
  MultiEdit: 'file_path',
  NotebookEdit: 'notebook_path',
};
const TODO_TOOL = 'TodoWrite';
/** The task tools: each changes one task of the plan, whose whole list is sent as a `todo` event. */
const TASK_CREATE = 'TaskCreate';
const TASK_UPDATE = 'TaskUpdate';
/** The model the CLI names on a message it wrote itself (an API error), not the model. */
export const SYNTHETIC_MODEL = '<synthetic>';

const Usage = z.looseObject({
  input_tokens: z.number().nullish(),
  output_tokens: z.number().nullish(),
  cache_read_input_tokens: z.number().nullish(),
  cache_creation_input_tokens: z.number().nullish(),
});
const Block = z.looseObject({ type: z.string() });
const TextBlock = z.looseObject({ type: z.literal('text'), text: z.string() });
const ToolUseBlock = z.looseObject({
  type: z.literal('tool_use'),
  id: z.string(),
  name: z.string(),
  input: z.record(z.string(), z.unknown()),
});
const ResultContent = z.union([z.string(), z.array(z.looseObject({ type: z.string(), text: z.string().optional() }))]);
const ToolResultBlock = z.looseObject({
  type: z.literal('tool_result'),
  tool_use_id: z.string(),
  content: ResultContent.optional(),
  is_error: z.boolean().optional(),
});
// The status is read leniently: a status a later CLI adds is shown as pending, not a failed run.
const TodoInput = z.looseObject({
  todos: z.array(z.looseObject({ id: z.string().optional(), content: z.string(), status: z.string() })),
});
const TODO_STATUSES: readonly string[] = ['pending', 'in_progress', 'completed'];
const TaskCreateInput = z.looseObject({ subject: z.string() });
const TaskUpdateInput = z.looseObject({
  taskId: z.union([z.string(), z.number()]),
  status: z.string().optional(),
  subject: z.string().optional(),
});
// What TaskCreate's result says: the id the CLI gave the task (`tool_use_result.task.id`, and "Task #1 created" in its text).
const TaskCreated = z.looseObject({ task: z.looseObject({ id: z.union([z.string(), z.number()]) }) });

const SystemMessage = z.looseObject({
  type: z.literal('system'),
  subtype: z.string(),
  session_id: z.string().optional(),
  model: z.string().optional(),
  cwd: z.string().optional(),
});
// `system`/`api_retry`: the CLI waits to send its request again (5xx, 429, a connection lost).
const ApiRetry = z.looseObject({
  attempt: z.number(),
  max_retries: z.number().nullish(),
  retry_delay_ms: z.number().nullish(),
  error_status: z.number().nullish(),
  error: z.string().nullish(),
});
const AssistantMessage = z.looseObject({
  type: z.literal('assistant'),
  message: z.looseObject({ content: z.array(Block), usage: Usage.nullish(), model: z.string().optional() }),
  parent_tool_use_id: z.string().nullish(),
  is_api_error_message: z.boolean().optional(),
});
const UserMessage = z.looseObject({
  type: z.literal('user'),
  message: z.looseObject({ content: z.union([z.string(), z.array(Block)]) }),
  tool_use_result: z.unknown().optional(),
});
export const ResultMessage = z.looseObject({
  type: z.literal('result'),
  subtype: z.string(),
  is_error: z.boolean(),
  result: z.string().optional(),
  usage: Usage.nullish(),
  total_cost_usd: z.number().nullish(),
  num_turns: z.number().nullish(),
  errors: z.array(z.unknown()).nullish(),
});
export type ResultMessage = z.infer<typeof ResultMessage>;

const MAPPED = { system: SystemMessage, assistant: AssistantMessage, user: UserMessage, result: ResultMessage } as const;

/** A line of the stream that is not the documented format: the run fails with this message. */
export class MalformedStreamError extends Error {}

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(message)'}: ${issue.message}`).join('; ');
}

function shown(line: string): string {
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

function parse<T extends z.ZodType>(schema: T, value: unknown, what: string, lineNo: number): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new MalformedStreamError(`claude sent a malformed ${what} on line ${lineNo}: ${describe(parsed.error)}`);
  return parsed.data;
}

/** The text of a tool result's content (a string, or text blocks beside images and others). */
function resultText(content: z.infer<typeof ResultContent> | undefined): string {
  if (content === undefined) return '';
  if (typeof content === 'string') return content;
  return content.map((block) => (block.type === 'text' ? (block.text ?? '') : `[${block.type}]`)).join('\n');
}

export interface StreamMapperOptions {
  /** The agent's workspace: file_change paths inside it are given relative to it. */
  workspace: string;
  /**
   * Whether `path` (absolute) existed before this run touched it, asked when a Write to it is
   * read: the CLI may already have written it by then, so the answer must not come from the
   * file system as it is now.
   */
  existedBefore(path: string): boolean;
}

interface PendingEdit {
  path: string;
  change: 'created' | 'modified';
}

/** What a line came to: the events to send, and a progress note when the line is a milestone. */
export interface MappedLine {
  events: HostEvent[];
  progress?: string;
}

/**
 * Maps the stream of one run, line by line, keeping what the mapping needs across lines: the
 * tool uses waiting for their result, the files already changed, the text already sent.
 */
export class ClaudeStreamMapper {
  private lineNo = 0;
  private readonly edits = new Map<string, PendingEdit>();
  private readonly toolNames = new Map<string, string>();
  // TodoWrite is how the agent keeps its plan: it becomes `todo` events, not a tool call.
  private readonly todoCalls = new Set<string>();
  // The task tools' uses waiting for their result (which says whether, and as which id, the task changed).
  private readonly taskCalls = new Map<string, { name: string; input: Record<string, unknown> }>();
  /** The plan as the task tools left it, in the order the tasks were made. */
  private readonly tasks = new Map<string, TodoItem>();
  private readonly changed = new Set<string>();
  private turns = 0;
  /** The agent's own words, in order (the run's output when the result carries none). */
  readonly texts: string[] = [];
  /** The final `result` message, once read. */
  result: ResultMessage | undefined;
  /** What the CLI said itself as an assistant message (an API error): never output. */
  readonly apiErrors: string[] = [];

  constructor(private readonly options: StreamMapperOptions) {}

  /** Maps one line of stdout; throws MalformedStreamError for a line that is not the format. */
  line(text: string): MappedLine {
    this.lineNo++;
    if (!text.trim()) return { events: [] };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new MalformedStreamError(`claude sent a line that is not JSON (line ${this.lineNo}): ${shown(text)}`);
    }
    const type = parse(Block, value, 'message (no type)', this.lineNo).type;
    // The result is the run's last word: whatever a later CLI may print after it changes nothing.
    if (this.result || !Object.hasOwn(MAPPED, type)) return { events: [] };
    switch (type) {
      case 'system':
        return this.system(parse(SystemMessage, value, 'system message', this.lineNo));
      case 'assistant':
        return this.assistant(parse(AssistantMessage, value, 'assistant message', this.lineNo));
      case 'user':
        return this.user(parse(UserMessage, value, 'user message', this.lineNo));
      default:
        this.result = parse(ResultMessage, value, 'result message', this.lineNo);
        return { events: [] };
    }
  }

  private system(message: z.infer<typeof SystemMessage>): MappedLine {
    if (message.subtype === 'api_retry') {
      // A run whose API fails keeps retrying for minutes: each retry is shown, not silence.
      const retry = parse(ApiRetry, message, 'api_retry message', this.lineNo);
      const status = [retry.error_status, retry.error ? `(${retry.error})` : undefined].filter(Boolean).join(' ');
      const of = retry.max_retries ? ` of ${retry.max_retries}` : '';
      const wait = typeof retry.retry_delay_ms === 'number' ? ` in ${(retry.retry_delay_ms / 1000).toFixed(1)} s` : '';
      return { events: [], progress: `API error${status ? ` ${status}` : ''}: retry ${retry.attempt}${of}${wait}` };
    }
    if (message.subtype !== 'init') return { events: [] };
    return { events: [], progress: `Claude Code started${message.model ? ` (${message.model})` : ''}` };
  }

  private assistant(message: z.infer<typeof AssistantMessage>): MappedLine {
    const events: HostEvent[] = [];
    const tools: string[] = [];
    // A subagent's own words are its report to the main agent, not the run's output.
    const subagent = Boolean(message.parent_tool_use_id);
    // The CLI's own message (an API error, before an is_error result): the run fails with it, the agent did not say it.
    const synthetic = message.is_api_error_message === true || message.message.model === SYNTHETIC_MODEL;
    for (const raw of message.message.content) {
      if (raw.type === 'text') {
        const { text } = parse(TextBlock, raw, 'text block', this.lineNo);
        if (synthetic) {
          if (text) this.apiErrors.push(text);
          continue;
        }
        if (subagent || !text) continue;
        const chunk = text.endsWith('\n') ? text : `${text}\n`;
        this.texts.push(text);
        events.push({ type: 'output', text: chunk });
      } else if (raw.type === 'tool_use') {
        const use = parse(ToolUseBlock, raw, 'tool_use block', this.lineNo);
        tools.push(use.name);
        events.push(...this.toolUse(use));
      }
    }
    if (!tools.length) return { events };
    this.turns++;
    return { events, progress: `turn ${this.turns}: ${tools.join(', ')}` };
  }

  private toolUse(use: z.infer<typeof ToolUseBlock>): HostEvent[] {
    this.toolNames.set(use.id, use.name);
    if (use.name === TASK_CREATE || use.name === TASK_UPDATE) {
      // Checked now, applied when the result says the CLI did it.
      parse(use.name === TASK_CREATE ? TaskCreateInput : TaskUpdateInput, use.input, `${use.name} input`, this.lineNo);
      this.taskCalls.set(use.id, { name: use.name, input: use.input });
      return [];
    }
    if (use.name === TODO_TOOL) {
      const input = parse(TodoInput, use.input, 'TodoWrite input', this.lineNo);
      this.todoCalls.add(use.id);
      const todos: TodoItem[] = input.todos.map((todo, i) => ({
        id: todo.id ?? String(i + 1),
        content: todo.content,
        status: (TODO_STATUSES.includes(todo.status) ? todo.status : 'pending') as TodoStatus,
      }));
      return [{ type: 'todo', todos }];
    }
    const field = FILE_EDIT_TOOLS[use.name];
    const path = field ? use.input[field] : undefined;
    if (typeof path === 'string' && path) {
      const absolute = resolve(this.options.workspace, path);
      // Only Write makes files; the edit tools change one that is there. A file this run already
      // wrote exists now, whatever the listing from before the run says.
      const existed = use.name !== 'Write' || this.changed.has(absolute) || this.options.existedBefore(absolute);
      this.edits.set(use.id, { path: absolute, change: existed ? 'modified' : 'created' });
    }
    return [{ type: 'tool_call', toolCallId: use.id, name: use.name, arguments: use.input }];
  }

  private user(message: z.infer<typeof UserMessage>): MappedLine {
    const events: HostEvent[] = [];
    if (typeof message.message.content === 'string') return { events };
    for (const raw of message.message.content) {
      if (raw.type !== 'tool_result') continue;
      const block = parse(ToolResultBlock, raw, 'tool_result block', this.lineNo);
      if (this.todoCalls.delete(block.tool_use_id)) continue;
      const task = this.taskCalls.get(block.tool_use_id);
      if (task) {
        this.taskCalls.delete(block.tool_use_id);
        // A refused or failed task change changed nothing.
        if (block.is_error !== true && this.applyTask(task, resultText(block.content), message.tool_use_result))
          events.push({ type: 'todo', todos: [...this.tasks.values()].map((item) => ({ ...item })) });
        continue;
      }
      const full = resultText(block.content);
      const output =
        full.length > TOOL_RESULT_CHARS
          ? `${full.slice(0, TOOL_RESULT_CHARS)}… [${full.length - TOOL_RESULT_CHARS} more characters]`
          : full;
      const isError = block.is_error === true;
      const name = this.toolNames.get(block.tool_use_id) ?? 'unknown';
      // `error`, as the host's own command results say a failure.
      const result = isError ? { output, error: output.split('\n')[0] || 'the tool reported an error' } : { output };
      events.push({ type: 'tool_result', toolCallId: block.tool_use_id, name, result });
      const edit = this.edits.get(block.tool_use_id);
      this.edits.delete(block.tool_use_id);
      // A refused or failed edit changed nothing.
      if (edit && !isError) {
        this.changed.add(edit.path);
        events.push({ type: 'file_change', path: this.shownPath(edit.path), change: edit.change });
      }
    }
    return { events };
  }

  /** Applies a task tool's use to the plan; false when it changed nothing the plan shows. */
  private applyTask(task: { name: string; input: Record<string, unknown> }, text: string, toolUseResult: unknown): boolean {
    if (task.name === TASK_CREATE) {
      const { subject } = TaskCreateInput.parse(task.input);
      const created = TaskCreated.safeParse(toolUseResult);
      const id = created.success ? String(created.data.task.id) : (/Task #(\S+) created/.exec(text)?.[1] ?? String(this.tasks.size + 1));
      this.tasks.set(id, { id, content: subject, status: 'pending' });
      return true;
    }
    const update = TaskUpdateInput.parse(task.input);
    const id = String(update.taskId);
    const item = this.tasks.get(id);
    if (!item) return false;
    if (update.status === 'deleted') this.tasks.delete(id);
    else {
      if (update.status) item.status = (TODO_STATUSES.includes(update.status) ? update.status : 'pending') as TodoStatus;
      if (update.subject) item.content = update.subject;
    }
    return true;
  }

  /** A path inside the workspace relative to it (as the agent's files are named), else as given. */
  private shownPath(path: string): string {
    const inside = relative(this.options.workspace, path);
    return inside && !inside.startsWith('..') && !isAbsolute(inside) ? inside : path;
  }
}

/**
 * Tokens the run used, as the CLI counts them in its result: input and output, and the input
 * read from or written to the prompt cache, which the API counts apart from `input_tokens`
 * (most of a CLI run's input: its system prompt and tools are cached after the first turn).
 */
export function tokensOf(result: ResultMessage): number | undefined {
  const usage = result.usage;
  if (!usage) return undefined;
  const counts = [usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens, usage.cache_creation_input_tokens];
  return Math.round(counts.reduce<number>((sum, count) => sum + (count ?? 0), 0));
}

/** Why a result is a failure, in words a person reads on the run. */
export function resultError(result: ResultMessage, maxTurns?: number): string {
  const errors = (result.errors ?? []).map((e) => (typeof e === 'string' ? e : JSON.stringify(e))).filter(Boolean);
  const detail = result.result?.trim() || errors.join('; ');
  switch (result.subtype) {
    case 'error_max_turns':
      return `Claude Code stopped after ${result.num_turns ?? maxTurns ?? 'too many'} turns${maxTurns ? ` (the limit is ${maxTurns})` : ''}${detail ? `: ${detail}` : ''}`;
    case 'error_during_execution':
      return `Claude Code failed during the run${detail ? `: ${detail}` : ''}`;
    default:
      return detail ? `Claude Code: ${detail}` : `Claude Code ended with ${result.subtype}`;
  }
}
