/**
 * One request to an OpenAI-compatible `POST {baseUrl}/chat/completions`, with what can go wrong
 * on the way turned into a sentence an operator can act on: a refused key, an unknown model, a
 * rate limit (with the wait the endpoint asks for), a failing or unreachable server, an endpoint
 * that stops answering. Cancellation is the caller's signal: it aborts the
 * HTTP request, or the stream it is reading, at once.
 */
import { errorMessageOf, readStreamedTurn, readWholeTurn, StreamFormatError, type ModelTurn, type TurnListener } from './openai-stream';

export interface EndpointSettings {
  /** Up to and including the API version, e.g. `https://api.openai.com/v1`, `http://localhost:11434/v1`. */
  baseUrl: string;
  /** Sent as a bearer token when set (local servers usually need none). */
  apiKey?: string;
  /** How long the endpoint may stay silent (before its answer starts, or between two chunks). */
  idleTimeoutMs: number;
}

/** The endpoint failed in a way the run cannot get past; the message says which and why. */
export class EndpointError extends Error {
  override readonly name = 'EndpointError';
}

const ERROR_BODY_CHARS = 2000;

/** Where the requests go: the base URL with `/chat/completions`, whatever trailing slash it has. */
export function completionsUrl(baseUrl: string): string {
  return `${baseUrl.replace(/\/+$/, '')}/chat/completions`;
}

/** Seconds to wait, from `retry-after-ms` (OpenAI), `retry-after` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const ms = Number(headers.get('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get('retry-after');
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

function describeWait(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Math.ceil(ms / 1000)} s`;
}

async function readErrorBody(response: Response): Promise<string> {
  const raw = await response.text().catch(() => '');
  let message: string | undefined;
  try {
    message = errorMessageOf(JSON.parse(raw));
  } catch {
    // Not JSON (a proxy's HTML page, plain text): the text itself is the best explanation.
  }
  const text = (message ?? raw).trim().replace(/\s+/g, ' ');
  return text.length > ERROR_BODY_CHARS ? `${text.slice(0, ERROR_BODY_CHARS)}…` : text;
}

/** The readable reason for an answer with an error status. */
export function statusError(status: number, detail: string, url: string, model: string, retryMs?: number): string {
  const said = detail ? `: ${detail}` : '';
  if (status === 401 || status === 403) return `the endpoint refused the API key (${status})${said} (check HOST_OPENAI_API_KEY)`;
  if (status === 404)
    return `the endpoint knows no model "${model}" or no path ${url} (404)${said} (check HOST_OPENAI_MODEL and HOST_OPENAI_BASE_URL)`;
  if (status === 429)
    return `the endpoint is rate limiting this host (429${retryMs !== undefined ? `, retry after ${describeWait(retryMs)}` : ''})${said}`;
  if (status >= 500) return `the endpoint failed (${status})${said}`;
  return `the endpoint rejected the request (${status})${said}`;
}

/** Why fetch could not get an answer at all, from the error undici throws and its cause. */
function unreachable(error: unknown, url: string): string {
  // Duck-typed: undici's errors may come from another realm (a test VM), where instanceof fails.
  const described = (value: unknown) =>
    typeof value === 'object' && value !== null ? (value as { code?: unknown; message?: unknown; cause?: unknown }) : {};
  const outer = described(error);
  const cause = described(outer.cause);
  const nested = described(cause.cause);
  const code = [cause.code, nested.code, outer.code].find((value): value is string => typeof value === 'string');
  const message = [cause.message, outer.message].find((value): value is string => typeof value === 'string' && value !== '');
  return `cannot reach the endpoint ${url} (${code ?? message ?? String(error)})`;
}

class IdleTimeout extends Error {}

/**
 * Sends one Chat Completions request and reads its answer, streamed (`onText` gets the text as
 * it comes) or whole, when the server ignored `stream`. Throws an EndpointError with the reason,
 * or the signal's reason when `signal` aborted. A 429 is not retried here: the run fails with
 * the wait the endpoint asked for, and the caller decides whether to run it again.
 */
export async function requestTurn(
  settings: EndpointSettings & { model: string },
  body: Record<string, unknown>,
  turn: number,
  signal: AbortSignal,
  listener: TurnListener,
): Promise<ModelTurn> {
  const url = completionsUrl(settings.baseUrl);
  const controller = new AbortController();
  const stop = () => controller.abort(signal.reason);
  signal.addEventListener('abort', stop, { once: true });
  let timer: NodeJS.Timeout | undefined;
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(new IdleTimeout()), settings.idleTimeoutMs);
  };
  const silent = () => `the endpoint ${url} sent nothing for ${describeWait(settings.idleTimeoutMs)} (HOST_OPENAI_TIMEOUT_MS)`;
  try {
    if (signal.aborted) throw signal.reason;
    touch();
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream, application/json',
          ...(settings.apiKey ? { authorization: `Bearer ${settings.apiKey}` } : {}),
        },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (controller.signal.reason instanceof IdleTimeout) throw new EndpointError(silent());
      throw new EndpointError(unreachable(error, url));
    }
    if (!response.ok) {
      const detail = await readErrorBody(response);
      const retryMs = response.status === 429 ? retryAfterMs(response.headers) : undefined;
      throw new EndpointError(statusError(response.status, detail, url, settings.model, retryMs));
    }
    try {
      if ((response.headers.get('content-type') ?? '').includes('application/json')) {
        // A server that ignored `stream` answers at once: its text is still the run's output.
        const whole = readWholeTurn(await response.json(), turn);
        if (whole.reasoning) await listener.onThinking?.();
        if (whole.text) await listener.onText(whole.text);
        return whole;
      }
      if (!response.body) throw new EndpointError(`the endpoint ${url} answered with an empty body`);
      const stream = response.body;
      const watched = (async function* () {
        for await (const bytes of stream) {
          touch();
          yield bytes;
        }
      })();
      return await readStreamedTurn(watched, turn, listener);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (controller.signal.reason instanceof IdleTimeout) throw new EndpointError(silent());
      if (error instanceof StreamFormatError || error instanceof EndpointError) throw error;
      // undici's errors may come from another realm: read the message without instanceof.
      const message = typeof error === 'object' && error !== null && 'message' in error ? String(error.message) : String(error);
      throw new EndpointError(`the endpoint's answer broke off: ${message}`);
    }
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', stop);
    // Whatever ended the read, the connection goes with it (a cancelled stream must close).
    if (!controller.signal.aborted) controller.abort();
  }
}
