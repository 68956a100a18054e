/**
 * A loopback stand-in for a third-party API, Anthropic's Messages API (`POST /v1/messages`
 * with `stream: true`), for driving the real Claude Code CLI offline. It speaks the documented
 * streaming format (server-sent events `message_start`, `content_block_start`,
 * `content_block_delta` (`text_delta`, `input_json_delta`), `content_block_stop`,
 * `message_delta` with `usage`, `message_stop`) and the documented error body
 * (`{"type":"error","error":{"type","message"}}` with its HTTP status). What it answers is a
 * script: one reply per request of the CLI's main loop (a streamed request that offers tools);
 * any other request (a side call of the CLI: a title, a summary) gets a short text.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type ReplyBlock = { type: 'text'; text: string } | { type: 'tool_use'; id: string; name: string; input: Record<string, unknown> };

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_read_input_tokens?: number;
  cache_creation_input_tokens?: number;
}

export type Reply = { content: ReplyBlock[]; usage?: Usage } | { status: number; error: { type: string; message: string } };

/** What the CLI sent: the body of one request, as JSON. */
export interface MessagesRequest {
  url: string;
  model?: string;
  stream?: boolean;
  tools?: { name: string }[];
  messages: { role: string; content: string | { type: string; [key: string]: unknown }[] }[];
}

export interface MessagesStandIn {
  /** For ANTHROPIC_BASE_URL. */
  url: string;
  /** Every request of the CLI's main loop, in order (a retry is a request too). */
  requests: MessagesRequest[];
  close(): Promise<void>;
}

const DEFAULT_USAGE: Usage = { input_tokens: 20, output_tokens: 10 };

/** The tool results the CLI sent back in its latest request, by tool_use id. */
export function toolResults(request: MessagesRequest): Map<string, { content: unknown; is_error?: boolean }> {
  const results = new Map<string, { content: unknown; is_error?: boolean }>();
  const last = request.messages.at(-1);
  if (!last || typeof last.content === 'string') return results;
  for (const block of last.content) {
    if (block.type === 'tool_result')
      results.set(String(block.tool_use_id), { content: block.content, is_error: block.is_error as boolean });
  }
  return results;
}

function sse(res: http.ServerResponse, event: string, data: Record<string, unknown>): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
}

function stream(res: http.ServerResponse, id: string, model: string, reply: { content: ReplyBlock[]; usage?: Usage }): void {
  const usage = reply.usage ?? DEFAULT_USAGE;
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  sse(res, 'message_start', {
    message: {
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { ...usage, output_tokens: 1 },
    },
  });
  reply.content.forEach((block, index) => {
    if (block.type === 'text') {
      sse(res, 'content_block_start', { index, content_block: { type: 'text', text: '' } });
      // Two deltas, as a model streams words.
      const half = Math.ceil(block.text.length / 2);
      for (const text of [block.text.slice(0, half), block.text.slice(half)])
        if (text) sse(res, 'content_block_delta', { index, delta: { type: 'text_delta', text } });
    } else {
      sse(res, 'content_block_start', { index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } });
      sse(res, 'content_block_delta', { index, delta: { type: 'input_json_delta', partial_json: JSON.stringify(block.input) } });
    }
    sse(res, 'content_block_stop', { index });
  });
  const toolUse = reply.content.some((block) => block.type === 'tool_use');
  sse(res, 'message_delta', {
    delta: { stop_reason: toolUse ? 'tool_use' : 'end_turn', stop_sequence: null },
    usage: { output_tokens: usage.output_tokens },
  });
  sse(res, 'message_stop', {});
  res.end();
}

/** A non-streaming answer: the whole message as one JSON body. */
function whole(res: http.ServerResponse, id: string, model: string, reply: { content: ReplyBlock[]; usage?: Usage }): void {
  const toolUse = reply.content.some((block) => block.type === 'tool_use');
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      id,
      type: 'message',
      role: 'assistant',
      model,
      content: reply.content,
      stop_reason: toolUse ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      usage: reply.usage ?? DEFAULT_USAGE,
    }),
  );
}

/**
 * Starts the stand-in on a free loopback port. `script(request, n)` answers the n-th (from 0)
 * main-loop request; it may read the request (the tool results the CLI sends back).
 */
export async function startMessagesStandIn(script: (request: MessagesRequest, n: number) => Reply): Promise<MessagesStandIn> {
  const requests: MessagesRequest[] = [];
  let messageId = 0;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let body: MessagesRequest;
      try {
        body = { ...(JSON.parse(Buffer.concat(chunks).toString('utf8')) as MessagesRequest), url: req.url ?? '' };
      } catch {
        body = { url: req.url ?? '', messages: [] };
      }
      const model = body.model ?? 'stand-in';
      const id = `msg_standin_${++messageId}`;
      const url = new URL(req.url ?? '/', 'http://stand-in');
      if (req.method !== 'POST' || url.pathname !== '/v1/messages') {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({ type: 'error', error: { type: 'not_found_error', message: `${req.method} ${url.pathname} is not served` } }),
        );
        return;
      }
      // The CLI falls back to a non-streaming request when a stream fails: that is the main loop too.
      const mainLoop = (body.tools ?? []).length > 0;
      const reply: Reply = mainLoop
        ? script(body, requests.push(body) - 1)
        : { content: [{ type: 'text', text: 'ok' }], usage: { input_tokens: 1, output_tokens: 1 } };
      if ('status' in reply) {
        res.writeHead(reply.status, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ type: 'error', error: reply.error }));
      } else if (body.stream === true) stream(res, id, model, reply);
      else whole(res, id, model, reply);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
