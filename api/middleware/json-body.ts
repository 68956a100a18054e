import { bodyParser } from '@koa/bodyparser';
import type { Middleware } from 'koa';
import type { AppContext } from '../context';
import { AppError } from '../../domain/errors';

const ENCODINGS = 'gzip, deflate, br or identity';

interface ParserError {
  status?: number;
  type?: string;
  message?: string;
}

/** A failure while reading the body is the client's: bytes that do not decode are a 400, never a 500. */
function asClientError(error: unknown, contentEncoding: string): unknown {
  const { status, message = '' } = (error ?? {}) as ParserError;
  if (status === 415 && /content-encoding/i.test(message)) {
    return new AppError(415, 'unsupported_media_type', `Content-Encoding ${contentEncoding} is not supported`, [
      { path: 'headers.content-encoding', message: `must be ${ENCODINGS}`, code: 'unsupported_encoding' },
    ]);
  }
  if (status === 415 && /charset/i.test(message)) {
    return new AppError(415, 'unsupported_media_type', 'The body charset is not supported', [
      { path: 'headers.content-type', message: 'charset must be utf-8', code: 'unsupported_charset' },
    ]);
  }
  // zlib's errors (Z_DATA_ERROR, Z_BUF_ERROR, brotli's) carry no HTTP status.
  if (status === undefined && contentEncoding !== 'identity') {
    return new AppError(400, 'invalid_body', 'The request body could not be decoded', [
      { path: 'headers.content-encoding', message: `the body is not valid ${contentEncoding} data`, code: 'invalid_encoding' },
    ]);
  }
  return error;
}

/**
 * JSON bodies only (others stay unparsed, and routes with a body answer 415). Parse failures
 * are told apart from whatever the routes below throw, so only they become client errors.
 */
export function jsonBody(limit: string): Middleware<AppContext['state'], AppContext> {
  const parse = bodyParser({
    enableTypes: ['json'],
    jsonLimit: limit,
    // Prompts are taken verbatim: no trimming or whitespace folding anywhere.
    jsonStrict: true,
  }) as unknown as Middleware<AppContext['state'], AppContext>;
  return async (ctx, next) => {
    try {
      await parse(ctx, async () => undefined);
    } catch (error) {
      throw asClientError(error, ctx.get('content-encoding') || 'identity');
    }
    await next();
  };
}
