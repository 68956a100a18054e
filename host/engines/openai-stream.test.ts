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

describe('the stream reader on thinking', () => {
  const chunk = (delta: Record<string, unknown>) => `${data({ choices: [{ index: 0, delta }] })}\n\n`;
  const read = async (...parts: string[]) => {
    const texts: string[] = [];
    const turn = await readStreamedTurn(bytes(...parts), 1, (text) => {
      texts.push(text);
    });
    return { texts, turn };
  };

  // The documented field (llama.cpp's reasoning_format, DeepSeek's API, vLLM): no server here
  // sends it, so these chunks are written from the documentation.
  it('keeps reasoning_content (and OpenRouter`s reasoning) apart from the text', async () => {
    const { texts, turn } = await read(
      chunk({ reasoning_content: 'The user asks about ' }),
      chunk({ reasoning_content: 'colour.' }),
      chunk({ reasoning: ' Short answer.' }),
      chunk({ content: 'Rayleigh scattering.' }),
    );
    expect(texts).toEqual(['Rayleigh scattering.']);
    expect(turn).toMatchObject({ text: 'Rayleigh scattering.', reasoning: 'The user asks about colour. Short answer.' });
  });

  it('leaves a <think> that is not at the start, and text that only begins like a tag, as said', async () => {
    const later = await read(chunk({ content: 'I wrote <think>' }), chunk({ content: ' in my notes' }));
    expect(later.turn).toEqual(expect.objectContaining({ text: 'I wrote <think> in my notes' }));
    expect(later.turn.reasoning).toBeUndefined();
    const tagLike = await read(chunk({ content: '  <th' }), chunk({ content: 'e end>' }));
    expect(tagLike.texts.join('')).toBe('  <the end>');
    const held = await read(chunk({ content: '<thi' }));
    expect(held).toMatchObject({ texts: ['<thi'], turn: { text: '<thi' } });
    // Blanks ahead of the tag, and a closing tag split across chunks.
    const split = await read(chunk({ content: '\n<think>a plan</th' }), chunk({ content: 'ink>\n\nThe answer.' }));
    expect(split).toMatchObject({ texts: ['The answer.'], turn: { text: 'The answer.', reasoning: 'a plan' } });
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

  // Recorded from SmolLM2 on xllamacpp with a request grammar that makes it open with a
  // <think> segment, as a reasoning model does when its server does not split the thinking out
  // (the chat template is not one llama.cpp knows as a reasoning one): the tag comes in pieces.
  it('takes a leading <think> segment out of the text: thought, never said', async () => {
    const texts: string[] = [];
    let thinking = 0;
    const turn = await readStreamedTurn(await fixture('smollm2-think.sse'), 1, {
      onText: (text) => {
        texts.push(text);
      },
      onThinking: () => {
        thinking++;
      },
    });
    expect(turn).toMatchObject({
      text: 'the sky can be influenced by our senses.',
      reasoning: 'the sky blue is a classic example of how our perception of a',
      finishReason: 'stop',
      usage: { totalTokens: 75 },
    });
    expect(texts.join('')).toBe(turn.text);
    expect(texts.length).toBeGreaterThan(3);
    expect(thinking).toBe(1);
  });

  it('a turn cut off while thinking says nothing, and keeps what it thought', async () => {
    const texts: string[] = [];
    const turn = await readStreamedTurn(await fixture('smollm2-think-cut.sse'), 1, (text) => {
      texts.push(text);
    });
    expect(texts).toEqual([]);
    expect(turn).toMatchObject({ text: '', reasoning: 'the sky', finishReason: 'length' });
  });

  it('reports finish_reason length when max_tokens cut the answer off', async () => {
    const turn = await readStreamedTurn(await fixture('smollm2-length.sse'), 1, () => undefined);
    expect(turn).toMatchObject({ finishReason: 'length', usage: { totalTokens: 42 } });
  });
});
