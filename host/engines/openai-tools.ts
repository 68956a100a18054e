/**
 * The tools the model is offered (function calling) and what calling them does. Commands go
 * through the host's runner (EngineRun.runCommand: allowedTools, no shell, the workspace, the
 * run's limits), files stay inside the workspace (openai-workspace.ts), the todo list becomes
 * `todo` events. `run_command` is offered only to an agent with allowed tools on a host that runs
 * commands, and its description names exactly those, so the model is never shown a tool it may not use.
 * `list_subordinates` and `delegate` are offered only to a run mcp-fleet gave fleet access (an
 * agent with subordinates): they go to the fleet through ./delegation.ts.
 */
import type { AllowedTool, HostEvent, TodoItem } from '../../lib/host-contract';
import { TodoStatus } from '../../lib/host-contract';
import { Delegation, DELEGATE_TOOL, LIST_SUBORDINATES_TOOL, type Delegated } from './delegation';
import type { CommandRun, EngineRun } from './engine';
import type { ModelToolCall } from './openai-stream';
import { readWorkspaceFile, writeWorkspaceFile, WorkspacePathError } from './openai-workspace';

/** A tool as Chat Completions `tools` lists it. */
export interface ChatTool {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

/** What a call came to: the `tool` message for the model, and any run output it printed. */
export interface ToolOutcome {
  content: string;
  output: string;
}

/** Command output the model gets back: its end, where errors are. The events carry all of it. */
const MODEL_OUTPUT_CHARS = 16 * 1024;
/** A write's content is shown in its tool_call event up to this length. */
const EVENT_CONTENT_CHARS = 2000;

function describeScope(tool: AllowedTool): string {
  const parts: string[] = [];
  if (tool.allowedCommands.length) parts.push(`only ${tool.allowedCommands.map((c) => `"${tool.name} ${c}"`).join(', ')}`);
  if (tool.blockedCommands.length) parts.push(`never ${tool.blockedCommands.map((c) => `"${tool.name} ${c}"`).join(', ')}`);
  return `${tool.name}${parts.length ? ` (${parts.join('; ')})` : ''}`;
}

const object = (properties: Record<string, unknown>, required: string[]) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
});

const DELEGATION_TOOLS: ChatTool[] = [
  {
    type: 'function',
    function: {
      name: LIST_SUBORDINATES_TOOL,
      description: 'Lists the agents you may hand work to (your direct subordinates): id, name, role, capabilities, status.',
      parameters: object({}, []),
    },
  },
  {
    type: 'function',
    function: {
      name: DELEGATE_TOOL,
      description:
        'Hands a prompt to one of your direct subordinates, which runs it as a run of its own, and waits for its answer: ' +
        '{executionId, status, output, data?, error?}. Several delegate calls in one turn run at the same time.',
      parameters: object(
        {
          agent: { type: 'string', description: 'The subordinate’s name or id (list_subordinates).' },
          prompt: { type: 'string', description: 'What the subordinate is to do: it sees nothing else of your work.' },
          context: { type: 'object', description: 'Optional data for the subordinate (JSON object).' },
        },
        ['agent', 'prompt'],
      ),
    },
  },
];

function definitions(allowedTools: readonly AllowedTool[], allowCommands: boolean, delegates: boolean): ChatTool[] {
  const tools: ChatTool[] = [];
  if (allowCommands && allowedTools.length) {
    tools.push({
      type: 'function',
      function: {
        name: 'run_command',
        description:
          'Runs one command line in the workspace as a real process and returns its exit code and output. ' +
          'There is no shell: pipes, redirections, `;`, `&&`, globs and variables do not work, and a program given as a path is refused. ' +
          `Programs you may run: ${allowedTools.map(describeScope).join(', ')}.`,
        parameters: object({ command: { type: 'string', description: 'The command line, e.g. "git status --short".' } }, ['command']),
      },
    });
  }
  tools.push(
    {
      type: 'function',
      function: {
        name: 'read_file',
        description: 'Reads a text file of the workspace. The path is relative to the workspace.',
        parameters: object({ path: { type: 'string', description: 'Relative to the workspace, e.g. "src/index.ts".' } }, ['path']),
      },
    },
    {
      type: 'function',
      function: {
        name: 'write_file',
        description:
          'Creates a file of the workspace, or replaces its whole content. Directories are created as needed. The path is relative to the workspace.',
        parameters: object(
          { path: { type: 'string' }, content: { type: 'string', description: 'The complete new content of the file.' } },
          ['path', 'content'],
        ),
      },
    },
    {
      type: 'function',
      function: {
        name: 'update_todos',
        description:
          'Replaces your todo list (the whole list, every time). Keep it current: one item in_progress while you work on it, completed when done.',
        parameters: object(
          {
            items: {
              type: 'array',
              items: object({ title: { type: 'string' }, status: { type: 'string', enum: TodoStatus.options } }, ['title', 'status']),
            },
          },
          ['items'],
        ),
      },
    },
  );
  if (delegates) tools.push(...DELEGATION_TOOLS);
  return tools;
}

/**
 * The `tool` message of a delegation: the child's result as JSON, its output cut to its end as a
 * command's is (the child's own log has all of it), or why there is none.
 */
function delegationAnswer(delegated: Delegated): string {
  if (!delegated.ok && delegated.refused) return `error: refused: ${delegated.reason}`;
  const { output } = delegated.result;
  if (typeof output !== 'string' || output.length <= MODEL_OUTPUT_CHARS) return JSON.stringify(delegated.result);
  return JSON.stringify({ ...delegated.result, output: `…${output.slice(-MODEL_OUTPUT_CHARS)}`, outputChars: output.length });
}

type Args = Record<string, unknown>;

class ToolInputError extends Error {}

function stringArg(args: Args, name: string): string {
  const value = args[name];
  if (typeof value !== 'string') throw new ToolInputError(`"${name}" must be a string`);
  return value;
}

/** The model's list as `todo` items: an item's id is its position, since the whole list is sent each time. */
function readTodos(args: Args): TodoItem[] {
  const items = args.items;
  if (!Array.isArray(items)) throw new ToolInputError('"items" must be an array');
  return items.map((item: unknown, i) => {
    const entry = (typeof item === 'object' && item !== null ? item : {}) as Args;
    const status = TodoStatus.safeParse(entry.status);
    if (typeof entry.title !== 'string' || !entry.title.trim()) throw new ToolInputError(`items[${i}].title must be a non-empty string`);
    if (!status.success) throw new ToolInputError(`items[${i}].status must be one of ${TodoStatus.options.join(', ')}`);
    return { id: String(i + 1), content: entry.title, status: status.data };
  });
}

function commandAnswer(run: CommandRun): string {
  if (run.refused !== undefined) return `refused: ${run.refused}. Nothing ran.`;
  const ended = run.timedOut
    ? `timed out after ${run.durationMs} ms`
    : run.signal
      ? `killed by ${run.signal}`
      : `exit code ${run.exitCode ?? 'none'}`;
  const notes = run.truncated ? ' (output limit reached: the command was stopped)' : '';
  const output = run.output.length > MODEL_OUTPUT_CHARS ? `…${run.output.slice(-MODEL_OUTPUT_CHARS)}` : run.output;
  return `${ended}${notes}\n${output || '(no output)'}`;
}

/** The tools of one run: what is offered, and the handling of the model's calls. */
export class AgentTools {
  readonly definitions: ChatTool[];
  private readonly offered: Set<string>;
  private readonly delegation: Delegation | undefined;

  /** `allowCommands`: whether the host runs commands at all (HOST_ALLOW_COMMANDS). */
  constructor(
    private readonly run: EngineRun,
    allowCommands: boolean,
  ) {
    this.delegation = run.fleet ? new Delegation(run) : undefined;
    this.definitions = definitions(run.allowedTools, allowCommands, this.delegation !== undefined);
    this.offered = new Set(this.definitions.map((tool) => tool.function.name));
  }

  /** Whether `call` hands work to a subordinate, which may run beside the turn's other calls. */
  isDelegation(call: ModelToolCall): boolean {
    return call.name === DELEGATE_TOOL && this.offered.has(DELEGATE_TOOL);
  }

  /** Closes the run's connection to the fleet, if one was opened. */
  async close(): Promise<void> {
    await this.delegation?.close();
  }

  /** Runs one tool call of the model; every call and its result are events, whatever happens. */
  async call(call: ModelToolCall, commandTimeoutMs?: number): Promise<ToolOutcome> {
    let args: Args;
    try {
      const parsed: unknown = JSON.parse(call.arguments || '{}');
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
      args = parsed as Args;
    } catch (error) {
      return this.refuse(
        call,
        { arguments: call.arguments },
        `the arguments are not a JSON object (${error instanceof Error ? error.message : String(error)})`,
      );
    }
    if (!this.offered.has(call.name)) {
      return this.refuse(call, args, `there is no tool "${call.name}" (tools: ${[...this.offered].join(', ')})`);
    }
    if (call.name === 'run_command') {
      if (typeof args.command !== 'string') return this.refuse(call, args, '"command" must be a string');
      const ran = await this.run.runCommand(args.command, {
        toolCallId: call.id,
        ...(commandTimeoutMs !== undefined ? { timeoutMs: commandTimeoutMs } : {}),
      });
      return { content: commandAnswer(ran), output: ran.refused === undefined ? ran.output : '' };
    }
    if (this.delegation && (call.name === DELEGATE_TOOL || call.name === LIST_SUBORDINATES_TOOL))
      return this.delegate(this.delegation, call, args);
    const shownArgs =
      call.name === 'write_file' && typeof args.content === 'string' && args.content.length > EVENT_CONTENT_CHARS
        ? { ...args, content: `${args.content.slice(0, EVENT_CONTENT_CHARS)}…`, contentChars: args.content.length }
        : args;
    await this.emit({ type: 'tool_call', toolCallId: call.id, name: call.name, arguments: shownArgs });
    try {
      const { content, result, events } = await this.perform(call.name, args);
      for (const event of events) await this.emit(event);
      await this.emit({ type: 'tool_result', toolCallId: call.id, name: call.name, result });
      return { content, output: '' };
    } catch (error) {
      if (!(error instanceof ToolInputError || error instanceof WorkspacePathError || isFsError(error))) throw error;
      await this.emit({ type: 'tool_result', toolCallId: call.id, name: call.name, result: { error: error.message } });
      return { content: `error: ${error.message}`, output: '' };
    }
  }

  private async perform(name: string, args: Args): Promise<{ content: string; result: Record<string, unknown>; events: HostEvent[] }> {
    const { workspace } = this.run;
    if (name === 'read_file') {
      const file = await readWorkspaceFile(workspace, stringArg(args, 'path'));
      const note = file.truncated ? `\n[only the first ${file.content.length} characters of ${file.size} bytes]` : '';
      return { content: `${file.content}${note}`, result: { size: file.size, truncated: file.truncated }, events: [] };
    }
    if (name === 'write_file') {
      const written = await writeWorkspaceFile(workspace, stringArg(args, 'path'), stringArg(args, 'content'));
      return {
        content: `${written.change} ${written.path} (${written.bytes} bytes)`,
        result: { path: written.path, change: written.change, bytes: written.bytes },
        events: [{ type: 'file_change', path: written.path, change: written.change }],
      };
    }
    const todos = readTodos(args);
    return { content: `todo list updated (${todos.length} items)`, result: { items: todos.length }, events: [{ type: 'todo', todos }] };
  }

  /** A delegation tool's call: its events come from ./delegation.ts, the child's output goes to the model (and is in the child's own log). */
  private async delegate(delegation: Delegation, call: ModelToolCall, args: Args): Promise<ToolOutcome> {
    if (call.name === LIST_SUBORDINATES_TOOL) {
      const listed = await delegation.listSubordinates(call.id);
      return { content: listed.ok ? JSON.stringify(listed.subordinates) : `error: ${listed.reason}`, output: '' };
    }
    const { agent, prompt, context } = args;
    if (typeof agent !== 'string' || typeof prompt !== 'string') return this.refuse(call, args, '"agent" and "prompt" must be strings');
    if (context !== undefined && (typeof context !== 'object' || context === null || Array.isArray(context)))
      return this.refuse(call, args, '"context" must be a JSON object');
    const request = { agent, prompt, ...(context !== undefined ? { context: context as Record<string, unknown> } : {}) };
    return { content: delegationAnswer(await delegation.delegate(request, call.id)), output: '' };
  }

  private async refuse(call: ModelToolCall, args: Args, reason: string): Promise<ToolOutcome> {
    await this.emit({ type: 'tool_call', toolCallId: call.id, name: call.name || 'unknown', arguments: args });
    await this.emit({ type: 'tool_result', toolCallId: call.id, name: call.name || 'unknown', result: { error: reason } });
    return { content: `error: ${reason}`, output: '' };
  }

  private emit(event: HostEvent): Promise<void> {
    return this.run.emit(event);
  }
}

/** A file system error worth telling the model (EACCES, ENOTDIR…), not a bug of the host. */
function isFsError(error: unknown): error is NodeJS.ErrnoException {
  // Not instanceof Error: node's own errors may come from another realm (a test VM).
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as NodeJS.ErrnoException).code === 'string' &&
    typeof (error as NodeJS.ErrnoException).syscall === 'string'
  );
}
