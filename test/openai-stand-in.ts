/**
 * An OpenAI-compatible Chat Completions endpoint for tests, on a loopback port (node:http):
 * no internet. It answers each `POST /v1/chat/completions` with the next scripted reply,
 * written in the documented streaming format of the Chat Completions API: server-sent events
 * whose `data` is a `chat.completion.chunk` object (`choices[0].delta.content` for text,
 * `choices[0].delta.tool_calls[]` fragments keyed by `index` for tool calls, `finish_reason` on
 * the last choice chunk, a final chunk with empty `choices` and `usage` when the request asked
 * for `stream_options.include_usage`), ended by `data: [DONE]`. Error replies are JSON bodies
 * `{error: {message, type, code}}` with their HTTP status, as OpenAI sends them.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  path: string;
  authorization?: string;
  body: Record<string, unknown>;
}

/** Writes one reply; may wait (for the test to see something) between chunks. */
export type Reply = (res: http.ServerResponse, request: ReceivedRequest) => Promise<void> | void;

export interface OpenAIStandIn {
  /** The base URL to give HOST_OPENAI_BASE_URL (…/v1). */
  baseUrl: string;
  requests: ReceivedRequest[];
  /** Replies still to give, in order; a request with none left gets a 500. */
  replies: Reply[];
  /** How many requests the client hung up on before their reply ended. */
  hangUps: number;
  close(): Promise<void>;
}

const CREATED = 1_732_000_000;

export function chunk(delta: Record<string, unknown>, finishReason: string | null = null): Record<string, unknown> {
  return {
    id: 'chatcmpl-stand-in',
    object: 'chat.completion.chunk',
    created: CREATED,
    model: 'stand-in-model',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

export function usageChunk(prompt: number, completion: number): Record<string, unknown> {
  return {
    id: 'chatcmpl-stand-in',
    object: 'chat.completion.chunk',
    created: CREATED,
    model: 'stand-in-model',
    choices: [],
    usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion },
  };
}

/** The chunks of a text answer: the role first, then the text piece by piece, then `stop`. */
export function textChunks(pieces: string[], finishReason = 'stop'): Record<string, unknown>[] {
  return [chunk({ role: 'assistant', content: '' }), ...pieces.map((content) => chunk({ content })), chunk({}, finishReason)];
}

/**
 * The chunks of tool calls, each split as OpenAI streams them: the first fragment holds the
 * index, id, type and name with empty arguments, the arguments JSON follows in pieces.
 */
export function toolCallChunks(calls: { id: string; name: string; arguments: Record<string, unknown> }[]): Record<string, unknown>[] {
  const chunks: Record<string, unknown>[] = [chunk({ role: 'assistant', content: null })];
  calls.forEach((call, index) => {
    chunks.push(chunk({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }] }));
    const json = JSON.stringify(call.arguments);
    const third = Math.ceil(json.length / 3);
    for (let at = 0; at < json.length; at += third)
      chunks.push(chunk({ tool_calls: [{ index, function: { arguments: json.slice(at, at + third) } }] }));
  });
  chunks.push(chunk({}, 'tool_calls'));
  return chunks;
}

export function writeEvents(res: http.ServerResponse, chunks: unknown[], done = true): void {
  if (!res.headersSent) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  for (const data of chunks) res.write(`data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`);
  if (done) res.end('data: [DONE]\n\n');
}

/** A streamed reply of `chunks` (ended by [DONE]). */
export const streamed =
  (chunks: unknown[]): Reply =>
  (res) =>
    writeEvents(res, chunks);

/** An error reply as OpenAI writes it. */
export const failure =
  (status: number, message: string, headers: Record<string, string> = {}): Reply =>
  (res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ error: { message, type: 'invalid_request_error', code: null } }));
  };

export async function startOpenAIStandIn(): Promise<OpenAIStandIn> {
  const standIn: OpenAIStandIn = {
    baseUrl: '',
    requests: [],
    replies: [],
    hangUps: 0,
    close: async () => undefined,
  };
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8').on('data', (text: string) => (raw += text));
    req.on('end', () => {
      const request: ReceivedRequest = {
        path: req.url ?? '',
        ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}),
        body: JSON.parse(raw || '{}') as Record<string, unknown>,
      };
      standIn.requests.push(request);
      res.on('close', () => {
        if (!res.writableEnded) standIn.hangUps++;
      });
      if (req.method !== 'POST' || request.path !== '/v1/chat/completions') {
        void failure(404, `Unknown request URL: ${req.method} ${request.path}`)(res, request);
        return;
      }
      const reply = standIn.replies.shift() ?? failure(500, 'the stand-in has no reply left');
      void Promise.resolve(reply(res, request)).catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  standIn.baseUrl = `http://127.0.0.1:${port}/v1`;
  standIn.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return standIn;
}
