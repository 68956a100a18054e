import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';
import { UnsafeUrlError } from './ssrf';

/**
 * How a failed MCP connection or call is told: the sentences of docs/servers.md and
 * docs/executions.md, made from whatever the SDK, fetch or the socket threw.
 */

export type McpErrorKind =
  'unauthorized' | 'not_found' | 'refused' | 'unreachable' | 'timeout' | 'not_mcp' | 'http' | 'protocol' | 'redirect';

/** A failure phrased for a person; never carries the token. */
export class McpConnectionError extends Error {
  constructor(
    message: string,
    readonly kind: McpErrorKind,
    readonly httpStatus?: number,
  ) {
    super(message);
    this.name = 'McpConnectionError';
  }
}

function hostPort(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || (u.protocol === 'https:' ? 443 : 80)}`;
  } catch {
    return url;
  }
}

function causeCode(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function httpStatusOf(error: unknown): number | undefined {
  // StreamableHTTPError uses -1 for "not an MCP answer"; SseError reports the 200 of a web page.
  if (error instanceof StreamableHTTPError || error instanceof SseError) {
    return typeof error.code === 'number' && error.code >= 300 && error.code < 600 ? error.code : undefined;
  }
  const match = /HTTP (\d{3})|\b(\d{3}) (?:Unauthorized|Forbidden|Not Found|Method Not Allowed)/.exec(
    error instanceof Error ? error.message : '',
  );
  return match ? Number(match[1] ?? match[2]) : undefined;
}

/** Turns whatever the SDK or fetch threw into the sentence an operator needs. */
export function describeMcpError(error: unknown, url: string, timeoutMs: number): McpConnectionError {
  if (error instanceof McpConnectionError) return error;
  if (error instanceof McpError && error.code === ErrorCode.RequestTimeout) {
    return new McpConnectionError(`timed out after ${Math.round(timeoutMs / 100) / 10} s`, 'timeout');
  }
  const status = httpStatusOf(error);
  if (status === 401 || status === 403)
    return new McpConnectionError(`the server rejected the master token (HTTP ${status})`, 'unauthorized', status);
  if (status === 404) return new McpConnectionError('no MCP endpoint at this URL (HTTP 404)', 'not_found', status);
  // The SDK follows a redirect only within the registered origin and only when it keeps the
  // request (so the token never travels elsewhere); any other redirect ends here.
  if (status !== undefined && status >= 300 && status < 400) {
    return new McpConnectionError(
      `the server redirects (HTTP ${status}) to a place mcp-fleet does not follow; register the final URL`,
      'redirect',
      status,
    );
  }
  if (status !== undefined) return new McpConnectionError(`the server answered HTTP ${status} instead of MCP`, 'http', status);
  const message = error instanceof Error ? error.message : String(error);
  // The SSE transport folds the fetch failure into its message instead of a cause.
  const code =
    causeCode(error) ?? /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT)\b/.exec(message)?.[1];
  if (code === 'ECONNREFUSED') return new McpConnectionError(`connection refused at ${hostPort(url)}`, 'refused');
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN')
    return new McpConnectionError(`host not found: ${new URL(url).hostname}`, 'unreachable');
  if (
    code === 'ETIMEDOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'ABORT_ERR' ||
    (error as Error)?.name === 'AbortError' ||
    (error as Error)?.name === 'TimeoutError'
  ) {
    return new McpConnectionError(`timed out after ${Math.round(timeoutMs / 100) / 10} s`, 'timeout');
  }
  if (code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'UND_ERR_SOCKET') {
    return new McpConnectionError(`could not reach ${hostPort(url)} (${code})`, 'unreachable');
  }
  // llhttp's parser codes: something listens there, but it is not an HTTP server.
  if (code?.startsWith('HPE_')) return new McpConnectionError(`${hostPort(url)} answered, but not with HTTP (${code})`, 'not_mcp');
  if (code?.startsWith('ERR_TLS') || code?.includes('CERT'))
    return new McpConnectionError(`TLS error talking to ${hostPort(url)} (${code})`, 'unreachable');
  if (error instanceof McpError) return new McpConnectionError(`the server answered with an MCP error: ${error.message}`, 'protocol');
  if (/content.type|json|unexpected token|parse|invalid/i.test(message)) {
    return new McpConnectionError(`the URL answered but does not speak MCP (${message.slice(0, 160)})`, 'not_mcp');
  }
  return new McpConnectionError(`MCP connection failed: ${message.slice(0, 200)}`, 'unreachable');
}

/** What a failed connection or call throws: the URL policy's own refusal (made at the socket's lookup) as it is, anything else as an McpConnectionError. */
export function connectionFailure(error: unknown, url: string, timeoutMs: number): Error {
  for (let cause: unknown = error, depth = 0; cause instanceof Error && depth < 5; cause = cause.cause, depth++) {
    if (cause instanceof UnsafeUrlError) return cause;
  }
  return describeMcpError(error, url, timeoutMs);
}
