/**
 * Tool calls written as text, from the real bytes llama.cpp streamed for Qwen2.5-Coder-0.5B
 * (test/fixtures/llm/qwen-tool-call-as-text.sse, recorded by `npm run test:llm`'s setup: the
 * server missed the call, streamed it as `content` and ended with `finish_reason: "stop"`),
 * and the forms that must stay text.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readStreamedTurn } from './openai-stream';
import { toolCallWrittenAsText } from './openai-text-calls';

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'llm');
const offered = new Set(['read_file', 'write_file', 'run_command']);

async function* bytes(text: string): AsyncGenerator<Uint8Array> {
  yield new TextEncoder().encode(text);
}

describe('a tool call written as text', () => {
  it('is read from what llama.cpp really streamed for qwen (content, finish_reason stop)', async () => {
    const turn = await readStreamedTurn(
      bytes(await readFile(path.join(FIXTURES, 'qwen-tool-call-as-text.sse'), 'utf8')),
      1,
      () => undefined,
    );
    expect(turn.toolCalls).toEqual([]);
    expect(turn.finishReason).toBe('stop');
    expect(toolCallWrittenAsText(turn.text, offered, 'call_1_text')).toEqual({
      id: 'call_1_text',
      name: 'read_file',
      arguments: JSON.stringify({ path: '/path/to/notes.txt' }),
    });
  });

  it('is read in a ```json fence, in <tool_call> tags, and with its arguments as a JSON string', () => {
    const call = (text: string) => toolCallWrittenAsText(text, offered, 'id');
    expect(call('```json\n{"name": "write_file", "arguments": {"path": "a.md", "content": "x"}}\n```\n')).toMatchObject({
      name: 'write_file',
      arguments: '{"path":"a.md","content":"x"}',
    });
    expect(call('<tool_call>\n{"name": "run_command", "arguments": {"command": "ls"}}\n</tool_call>')).toMatchObject({
      name: 'run_command',
    });
    expect(call('{"name": "read_file", "arguments": "{\\"path\\": \\"a\\"}"}')).toMatchObject({ arguments: '{"path": "a"}' });
  });

  it('stays text when it is not one whole call of an offered tool', () => {
    const call = (text: string) => toolCallWrittenAsText(text, offered, 'id');
    expect(call('{"name": "delete_everything", "arguments": {}}')).toBeUndefined();
    expect(call('{"name": "read_file", "arguments": {"path": "a"}, "city": "Paris"}')).toBeUndefined();
    expect(call('Here it is: {"name": "read_file", "arguments": {"path": "a"}}')).toBeUndefined();
    expect(call('{"name": "read_file", "arguments": {"path": ')).toBeUndefined();
    expect(call('{"name": "read_file", "arguments": [1]}')).toBeUndefined();
    expect(call('The answer is 42.')).toBeUndefined();
  });
});
