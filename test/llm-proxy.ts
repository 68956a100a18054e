/**
 * A loopback HTTP proxy in front of a real model server, for `npm run test:llm`: it passes
 * every request and answer through unchanged and records them with the time each piece of the
 * answer left the server, so a test can compare what the engine made of a run with what the
 * server really sent (its text, its usage, when it ended). A client that hangs up closes the
 * upstream request too (a cancelled run must free the server), and an upstream that breaks off
 * breaks the client's answer off the same way.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Exchange {
  body: Record<string, unknown>;
  startedAt: number;
  status?: number;
  /** What the server sent, as it arrived (already de-chunked), with performance.now() times. */
  pieces: { at: number; text: string }[];
  /** When the server's answer ended (or broke off). */
  endedAt?: number;
  /** Whether the client hung up before the answer ended. */
  hungUp: boolean;
}

export interface RecordingProxy {
  /** `http://127.0.0.1:PORT/v1`: for HOST_OPENAI_BASE_URL. */
  baseUrl: string;
  exchanges: Exchange[];
  close(): Promise<void>;
}

export async function startRecordingProxy(targetPort: number): Promise<RecordingProxy> {
  const exchanges: Exchange[] = [];
  const server = http.createServer((req, res) => {
    const body: Buffer[] = [];
    req.on('data', (piece: Buffer) => body.push(piece));
    req.on('end', () => {
      const raw = Buffer.concat(body);
      let parsed: Record<string, unknown> = {};
      try {
        parsed = JSON.parse(raw.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        // Not JSON (a GET): recorded as an empty body.
      }
      const exchange: Exchange = { body: parsed, startedAt: performance.now(), pieces: [], hungUp: false };
      exchanges.push(exchange);
      const upstream = http.request(
        {
          host: '127.0.0.1',
          port: targetPort,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: `127.0.0.1:${targetPort}` },
        },
        (answer) => {
          exchange.status = answer.statusCode;
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.on('data', (piece: Buffer) => {
            exchange.pieces.push({ at: performance.now(), text: piece.toString('utf8') });
            res.write(piece);
          });
          answer.on('end', () => {
            exchange.endedAt = performance.now();
            res.end();
          });
          answer.on('error', () => undefined);
          answer.on('close', () => {
            if (answer.complete) return;
            exchange.endedAt ??= performance.now();
            res.destroy();
          });
        },
      );
      upstream.on('error', () => {
        exchange.endedAt ??= performance.now();
        res.destroy();
      });
      res.on('close', () => {
        if (exchange.endedAt === undefined) {
          exchange.hungUp = true;
          upstream.destroy();
        }
      });
      upstream.end(raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    exchanges,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

type Json = Record<string, unknown>;

/** The chunks of a streamed exchange, in order ([DONE] left out). */
export function chunksOf(exchange: Exchange): { at: number; chunk: Json }[] {
  const chunks: { at: number; chunk: Json }[] = [];
  let pending = '';
  for (const piece of exchange.pieces) {
    pending += piece.text;
    let end: number;
    while ((end = pending.indexOf('\n\n')) >= 0) {
      const event = pending.slice(0, end);
      pending = pending.slice(end + 2);
      const data = event
        .split('\n')
        .filter((line) => line.startsWith('data: '))
        .map((line) => line.slice(6))
        .join('\n');
      if (data && data !== '[DONE]') chunks.push({ at: piece.at, chunk: JSON.parse(data) as Json });
    }
  }
  return chunks;
}

/** What the server said in an exchange: its text, its usage, when the first token left it. */
export function answerOf(exchange: Exchange): {
  text: string;
  contentChunks: number;
  firstTokenAt?: number;
  totalTokens?: number;
  completionTokens?: number;
  finishReason?: string;
  toolCalls: boolean;
  model?: string;
} {
  let text = '';
  let contentChunks = 0;
  let firstTokenAt: number | undefined;
  let totalTokens: number | undefined;
  let completionTokens: number | undefined;
  let finishReason: string | undefined;
  let toolCalls = false;
  let model: string | undefined;
  for (const { at, chunk } of chunksOf(exchange)) {
    model ??= chunk.model as string | undefined;
    const usage = chunk.usage as { total_tokens?: number; completion_tokens?: number } | undefined;
    if (usage?.total_tokens !== undefined) totalTokens = usage.total_tokens;
    if (usage?.completion_tokens !== undefined) completionTokens = usage.completion_tokens;
    const choice = (chunk.choices as Json[] | undefined)?.[0];
    const delta = (choice?.delta ?? {}) as { content?: string | null; tool_calls?: unknown[] };
    if (typeof choice?.finish_reason === 'string') finishReason = choice.finish_reason;
    if (delta.tool_calls?.length) toolCalls = true;
    if (delta.content) {
      text += delta.content;
      contentChunks++;
      firstTokenAt ??= at;
    }
  }
  return { text, contentChunks, firstTokenAt, totalTokens, completionTokens, finishReason, toolCalls, model };
}
