/**
 * The Chat Completions stream reader on what servers send differently from OpenAI (written
 * here as bytes, as they arrive): `\r\n` line ends, comments, events split across reads, no
 * `[DONE]`, tool calls without an id or index, usage on every chunk, an error object mid-stream.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { readStreamedTurn, sseData } from './openai-stream';

async function* bytes(...parts: string[]): AsyncGenerator<Uint8Array> {
  for (const part of parts) yield new TextEncoder().encode(part);
}

async function collect(source: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const item of source) all.push(item);
  return all;
}

const data = (value: unknown) => `data: ${JSON.stringify(value)}`;

describe('the Chat Completions stream reader', () => {
  it('reads events split anywhere, with \\r\\n line ends and comments, up to [DONE]', async () => {
    const events = await collect(
      sseData(bytes(': keep-alive\r\n\r\ndata: {"a"', ':1}\r', '\n\r\ndata:{"b":2}\n\ndata: [DONE]\n\ndata: {"late":3}\n\n')),
    );
    expect(events).toEqual(['{"a":1}', '{"b":2}']);
  });

  it('keeps the last event of a server that closes without [DONE] or a blank line', async () => {
    expect(await collect(sseData(bytes('data: {"a":1}\n\ndata: {"b":2}')))).toEqual(['{"a":1}', '{"b":2}']);
  });

  it('puts together tool calls without ids, and takes the last usage of a server that reports it on every chunk', async () => {
    const texts: string[] = [];
    const turn = await readStreamedTurn(
      bytes(
        `${data({ choices: [{ index: 0, delta: { content: 'Let me look.' } }], usage: { prompt_tokens: 5, completion_tokens: 1, total_tokens: 6 } })}\n\n`,
        `${data({ choices: [{ index: 0, delta: { tool_calls: [{ function: { name: 'read_file', arguments: '{"pa' } }] } }] })}\n\n`,
        `${data({ choices: [{ index: 0, delta: { tool_calls: [{ function: { arguments: 'th":"a.txt"}' } }] }, finish_reason: 'tool_calls' }], usage: { prompt_tokens: 5, completion_tokens: 9 } })}\n\n`,
      ),
      3,
      (text) => {
        texts.push(text);
      },
    );
    expect(texts).toEqual(['Let me look.']);
    expect(turn).toEqual({
      text: 'Let me look.',
      toolCalls: [{ id: 'call_3_0', name: 'read_file', arguments: '{"path":"a.txt"}' }],
      finishReason: 'tool_calls',
      usage: { totalTokens: 14 },
    });
  });

  it('reports no usage when the endpoint sends none, and fails on an error object mid-stream', async () => {
    const turn = await readStreamedTurn(
      bytes(`${data({ choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: 'stop' }] })}\n\n`),
      1,
      () => undefined,
    );
    expect(turn.usage).toBeUndefined();
    await expect(readStreamedTurn(bytes(`${data({ error: { message: 'model overloaded' } })}\n\n`), 1, () => undefined)).rejects.toThrow(
      'the endpoint reported an error mid-stream: model overloaded',
    );
  });
});

describe('the stream reader on what llama.cpp really sent (test/fixtures/llm, recorded from SmolLM2 on xllamacpp)', () => {
  const fixture = async (name: string) => bytes(await readFile(path.join(__dirname, '..', '..', 'test', 'fixtures', 'llm', name), 'utf8'));

  it('takes the usage from the last chunk, whose choices are empty, beside llama.cpp`s own timings', async () => {
    const texts: string[] = [];
    const turn = await readStreamedTurn(await fixture('smollm2-text.sse'), 1, (text) => {
      texts.push(text);
    });
    expect(turn.text).toBe(texts.join(''));
    expect(texts.length).toBeGreaterThan(3);
    expect(turn).toMatchObject({ finishReason: 'stop', usage: { totalTokens: 48 } });
  });

  it('reports finish_reason length when max_tokens cut the answer off', async () => {
    const turn = await readStreamedTurn(await fixture('smollm2-length.sse'), 1, () => undefined);
    expect(turn).toMatchObject({ finishReason: 'length', usage: { totalTokens: 42 } });
  });
});
