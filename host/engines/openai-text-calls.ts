/**
 * A tool call the model wrote as its answer's text instead of calling. Small local models do
 * this (recorded from Qwen2.5-Coder-0.5B on llama.cpp, test/fixtures/llm/): the server's parser
 * misses the call, streams it as `content` and ends with `finish_reason: "stop"`, so the run
 * would end with a JSON object as its "report". When the whole answer is one call of an offered
 * tool — `{"name": ..., "arguments": {...}}`, bare, in a ```json fence or in Qwen's
 * `<tool_call>` tags — it runs as the call it was meant to be. Anything else stays text.
 */
import type { ModelToolCall } from './openai-stream';

const WRAPPERS = [/^```(?:json)?\s*([\s\S]*?)\s*```$/i, /^<tool_call>\s*([\s\S]*?)\s*<\/tool_call>$/];

function unwrap(text: string): string {
  const trimmed = text.trim();
  for (const wrapper of WRAPPERS) {
    const match = wrapper.exec(trimmed);
    if (match) return match[1]!;
  }
  return trimmed;
}

/** The call `text` spells out, when it is nothing but one call of a tool in `offered`. */
export function toolCallWrittenAsText(text: string, offered: ReadonlySet<string>, id: string): ModelToolCall | undefined {
  const body = unwrap(text);
  if (!body.startsWith('{')) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  const { name, arguments: args, ...rest } = parsed as Record<string, unknown>;
  // Only the two keys of a call: an answer that merely has a `name` field is an answer.
  if (Object.keys(rest).length || typeof name !== 'string' || !offered.has(name)) return undefined;
  if (args === undefined) return { id, name, arguments: '{}' };
  if (typeof args === 'string') return { id, name, arguments: args };
  if (typeof args === 'object' && args !== null && !Array.isArray(args)) return { id, name, arguments: JSON.stringify(args) };
  return undefined;
}
