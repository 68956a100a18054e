/**
 * Reads one streamed Chat Completions answer (`stream: true`): server-sent events whose `data`
 * is a `chat.completion.chunk` JSON object, ended by `data: [DONE]`. The text deltas are handed
 * on as they arrive (the run's live output); tool calls come as fragments keyed by `index` (the
 * id and name in the first, the arguments JSON split across the rest) and are put back together;
 * `usage` comes in the last chunk when the request asked for `stream_options.include_usage`.
 *
 * Written against the documented format rather than with a vendor SDK because the same reader
 * must take what Ollama, vLLM, llama.cpp and LM Studio send, which differ in the details this
 * file tolerates (a missing tool call id, usage in every chunk, `\r\n` line ends, no `[DONE]`).
 */

/** One tool call of the model, as it was put together from its fragments. */
export interface ModelToolCall {
  id: string;
  name: string;
  /** The arguments JSON, as the model wrote it (not necessarily valid JSON). */
  arguments: string;
}

/** The endpoint's count for one request (`usage.total_tokens`, or prompt + completion when it gives no total). */
export interface TokenUsage {
  totalTokens: number;
}

/** One turn of the model: what it said, the tools it called, why it stopped. */
export interface ModelTurn {
  /** What it said, without its thinking. */
  text: string;
  /** Its thinking, when it sent any (`reasoning_content`, or a leading `<think>` segment): never output. */
  reasoning?: string;
  toolCalls: ModelToolCall[];
  /** `stop`, `tool_calls`, `length`, `content_filter`, or undefined when the endpoint sent none. */
  finishReason?: string;
  /** What the endpoint reported for this request; undefined when it reported nothing. */
  usage?: TokenUsage;
  /** OpenAI's structured-output refusal, when the model declined to answer. */
  refusal?: string;
}

/** The stream broke the format: the run fails with this text, the host stays up. */
export class StreamFormatError extends Error {
  override readonly name = 'StreamFormatError';
}

const SHOWN_CHARS = 200;

function shown(text: string): string {
  return text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
}

/**
 * The `data` of each server-sent event of `body`, in order (the event-stream format of the
 * HTML standard: `data:` lines joined by `\n`, an empty line ends an event, `:` lines are
 * comments, other fields are ignored). Stops after `[DONE]`.
 */
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = '';
  let data: string[] = [];
  const line = function* (text: string): Generator<string> {
    if (text === '') {
      if (data.length) yield data.join('\n');
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    if (field !== 'data') return;
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    data.push(value);
  };
  for await (const bytes of body) {
    pending += decoder.decode(bytes, { stream: true });
    // A `\r` at the very end may be the first half of `\r\n`: it waits for the next read.
    let end: number;
    while ((end = pending.search(/\r\n|\r(?!$)|\n/)) >= 0) {
      const text = pending.slice(0, end);
      pending = pending.slice(end + (pending.startsWith('\r\n', end) ? 2 : 1));
      for (const event of line(text)) {
        if (event === '[DONE]') return;
        yield event;
      }
    }
  }
  pending += decoder.decode();
  // A server that closes without the final blank line still meant its last event.
  for (const event of [...line(pending.replace(/\r$/, '')), ...line('')]) {
    if (event === '[DONE]') return;
    yield event;
  }
}

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** The message of an `{error: ...}` object as OpenAI, vLLM, Ollama or a proxy write it. */
export function errorMessageOf(body: unknown): string | undefined {
  if (!isObject(body)) return undefined;
  const error = body.error;
  if (typeof error === 'string') return error;
  if (isObject(error) && typeof error.message === 'string') return error.message;
  if (typeof body.detail === 'string') return body.detail;
  if (typeof body.message === 'string') return body.message;
  return undefined;
}

const count = (value: unknown): number | undefined =>
  typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : undefined;

/** The usage an endpoint reported, or undefined: a count is never made up from nothing. */
function readUsage(value: unknown): TokenUsage | undefined {
  if (!isObject(value)) return undefined;
  const total = count(value.total_tokens);
  if (total !== undefined) return { totalTokens: total };
  const prompt = count(value.prompt_tokens);
  const completion = count(value.completion_tokens);
  return prompt !== undefined && completion !== undefined ? { totalTokens: prompt + completion } : undefined;
}

const THINK_OPEN = '<think>';
const THINK_CLOSE = '</think>';

/**
 * Takes a leading `<think>…</think>` segment out of a turn's text as it streams: what a reasoning
 * model writes when its server does not split it into `reasoning_content` (llama.cpp with a chat
 * template it does not know as a reasoning one, Ollama without `think`). Only at the start of the
 * text (after blanks): a `<think>` later on is what the model said. Holds back the few characters
 * that may be the start of a tag split across chunks (llama.cpp sends `<`, `t`, `hi`, `n`, …).
 */
class ThinkSplitter {
  private state: 'start' | 'thinking' | 'text' = 'start';
  private held = '';

  /** Feeds text; answers what of it is said and what is thought, as far as is known yet. */
  push(text: string): { said: string; thought: string } {
    if (this.state === 'text') return { said: text, thought: '' };
    this.held += text;
    if (this.state === 'start') {
      const lead = this.held.trimStart();
      if (lead.length < THINK_OPEN.length && THINK_OPEN.startsWith(lead)) return { said: '', thought: '' };
      if (!lead.startsWith(THINK_OPEN)) return this.sayHeld();
      this.state = 'thinking';
      this.held = lead.slice(THINK_OPEN.length);
    }
    const close = this.held.indexOf(THINK_CLOSE);
    if (close < 0) {
      // Keep what may be the beginning of `</think>`; the rest is thought.
      let keep = Math.min(THINK_CLOSE.length - 1, this.held.length);
      while (keep > 0 && !THINK_CLOSE.startsWith(this.held.slice(-keep))) keep--;
      const thought = this.held.slice(0, this.held.length - keep);
      this.held = this.held.slice(this.held.length - keep);
      return { said: '', thought };
    }
    const thought = this.held.slice(0, close);
    this.held = this.held.slice(close + THINK_CLOSE.length).replace(/^\s+/, '');
    this.state = 'text';
    const said = this.held;
    this.held = '';
    return { said, thought };
  }

  /** The end of the turn: what is still held is said (an unfinished `<think>` is thought). */
  end(): { said: string; thought: string } {
    if (this.state === 'thinking') {
      const thought = this.held;
      this.held = '';
      return { said: '', thought };
    }
    return this.sayHeld();
  }

  private sayHeld(): { said: string; thought: string } {
    this.state = 'text';
    const said = this.held;
    this.held = '';
    return { said, thought: '' };
  }
}

/** Puts a turn together from chunks (streamed) or from one whole `chat.completion` answer. */
export class TurnBuilder {
  private text = '';
  private reasoning = '';
  private readonly think = new ThinkSplitter();
  private refusal = '';
  private readonly calls = new Map<number, ModelToolCall>();
  private finishReason?: string;
  private usage?: TokenUsage;

  constructor(private readonly turn: number) {}

  /** Adds one chunk; returns the text it brings (to stream on), if any, and whether it brought thinking. */
  addChunk(chunk: unknown): { text: string; thinking: boolean } {
    if (!isObject(chunk))
      throw new StreamFormatError(`the endpoint sent a chunk that is not a JSON object: ${shown(JSON.stringify(chunk))}`);
    const error = errorMessageOf(chunk);
    if (error !== undefined) throw new StreamFormatError(`the endpoint reported an error mid-stream: ${error}`);
    // Servers that report usage on every chunk (vLLM's continuous usage stats) give running totals.
    this.usage = readUsage(chunk.usage) ?? this.usage;
    const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c) => isObject(c) && (c.index ?? 0) === 0) : undefined;
    if (!isObject(choice)) return { text: '', thinking: false };
    this.finishReason = text(choice.finish_reason) ?? this.finishReason;
    const delta = isObject(choice.delta) ? choice.delta : isObject(choice.message) ? choice.message : {};
    // Thinking as llama.cpp (reasoning_format), DeepSeek and vLLM send it, or as OpenRouter does.
    const reasoned = text(delta.reasoning_content) ?? text(delta.reasoning) ?? '';
    const { said, thought } = this.think.push(text(delta.content) ?? '');
    this.text += said;
    this.reasoning += reasoned + thought;
    this.refusal += text(delta.refusal) ?? '';
    if (Array.isArray(delta.tool_calls)) {
      for (const [position, fragment] of delta.tool_calls.entries()) this.addToolCallFragment(fragment, position);
    }
    return { text: said, thinking: reasoned.length + thought.length > 0 };
  }

  /** The end of the stream: text held back in case it began a `<think>` tag. */
  private endText(): string {
    const { said, thought } = this.think.end();
    this.text += said;
    this.reasoning += thought;
    return said;
  }

  private addToolCallFragment(fragment: unknown, position: number): void {
    if (!isObject(fragment))
      throw new StreamFormatError(`the endpoint sent a tool call that is not an object: ${shown(JSON.stringify(fragment))}`);
    // Whole answers (and some servers' streams) leave out `index`: the position in the list stands in.
    const index = typeof fragment.index === 'number' ? fragment.index : position;
    const fn = isObject(fragment.function) ? fragment.function : {};
    let call = this.calls.get(index);
    if (!call) {
      call = { id: '', name: '', arguments: '' };
      this.calls.set(index, call);
    }
    call.id ||= text(fragment.id) ?? '';
    call.name += text(fn.name) ?? '';
    call.arguments += text(fn.arguments) ?? '';
  }

  /** Ends the turn: returns the last text held back (to stream on) and the turn. */
  finish(): { text: string; turn: ModelTurn } {
    const last = this.endText();
    const toolCalls = [...this.calls.entries()]
      .sort(([a], [b]) => a - b)
      // llama.cpp and older Ollama send no id; the result must still name the call it answers.
      .map(([index, call]) => ({ ...call, id: call.id || `call_${this.turn}_${index}` }));
    const turn: ModelTurn = {
      text: this.text,
      ...(this.reasoning ? { reasoning: this.reasoning } : {}),
      toolCalls,
      ...(this.finishReason !== undefined ? { finishReason: this.finishReason } : {}),
      ...(this.usage ? { usage: this.usage } : {}),
      ...(this.refusal ? { refusal: this.refusal } : {}),
    };
    return { text: last, turn };
  }
}

/** What a turn's reader tells as the answer streams. */
export interface TurnListener {
  /** Each piece of what the model says, as it arrives (never its thinking). */
  onText(text: string): void | Promise<void>;
  /** The model began thinking (once a turn). */
  onThinking?(): void | Promise<void>;
}

/**
 * Reads a streamed answer to its end, telling `listener` of the text as it arrives.
 * A chunk that is not JSON ends the turn with a StreamFormatError naming it.
 */
export async function readStreamedTurn(
  body: AsyncIterable<Uint8Array>,
  turn: number,
  listen: TurnListener | TurnListener['onText'],
): Promise<ModelTurn> {
  const listener = typeof listen === 'function' ? { onText: listen } : listen;
  const builder = new TurnBuilder(turn);
  let thinking = false;
  for await (const data of sseData(body)) {
    let chunk: unknown;
    try {
      chunk = JSON.parse(data);
    } catch {
      throw new StreamFormatError(`the endpoint sent a malformed stream chunk (not JSON): ${shown(data)}`);
    }
    const added = builder.addChunk(chunk);
    if (added.thinking && !thinking) {
      thinking = true;
      await listener.onThinking?.();
    }
    if (added.text) await listener.onText(added.text);
  }
  const { text: last, turn: read } = builder.finish();
  if (last) await listener.onText(last);
  return read;
}

/** A whole `chat.completion` answer, from a server that ignored `stream: true`. */
export function readWholeTurn(body: unknown, turn: number): ModelTurn {
  const builder = new TurnBuilder(turn);
  builder.addChunk(body);
  return builder.finish().turn;
}
