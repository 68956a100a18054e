import { ApplicationFailure, CancelledFailure } from '@temporalio/activity';
import { McpServer } from '../entities';
import { masterTokenContext } from '../domain/servers/master-token';
import { openSecret, SecretDecryptionError } from '../lib/crypto';
import type { McpConnection } from '../lib/mcp-client';
import { describeMcpError, McpConnectionError } from '../lib/mcp-errors';
import { storable, storableText } from '../lib/pg-text';
import { assertSafeUrl, UnsafeUrlError } from '../lib/ssrf';
import { urlPolicy } from '../lib/url-policy';
import type { ActivityDeps } from './deps';

/** Reaching or talking to a server failed; the message is the sentence a person reads (never the token). */
export class ServerCallFailed extends Error {
  override name = 'ServerCallFailed';
}

export interface ServerSession {
  server: McpServer;
  connection: McpConnection;
  /** `performance.now()` when the connection was asked for: a round trip timed from here includes a fresh connect. */
  since: number;
}

export interface WithServerOptions {
  /** What a timeout is reported as (a prompt runs for the run's limit, not one request's); default MCP_TIMEOUT_MS. */
  timeoutMs?: number;
  /** Whether a failed pooled connection may be replaced and `fn` run again; default yes. */
  canRetry?: (error: unknown) => boolean;
}

/**
 * The one way activities reach an MCP server: the URL policy (checked again at connect time,
 * since a name may have started pointing somewhere forbidden), the master token (decrypted here
 * and never handed out), the pooled connection, and one translation of every failure into a
 * `ServerCallFailed` sentence. What `fn` returns came from the server, so its strings are made
 * storable in PostgreSQL on the way out.
 */
export function serverGateway({ orm, config, logger, mcp }: Pick<ActivityDeps, 'orm' | 'config' | 'logger' | 'mcp'>) {
  const policy = urlPolicy(config);

  async function load(ref: string | McpServer): Promise<McpServer> {
    if (typeof ref !== 'string' && ref.masterTokenCiphertext !== undefined) return ref;
    const id = typeof ref === 'string' ? ref : ref.id;
    const server = await orm.em.fork().findOne(McpServer, id, { populate: ['masterTokenCiphertext'] });
    if (!server) throw ApplicationFailure.nonRetryable(`server ${id} does not exist`, 'ServerNotFound');
    return server;
  }

  function failureText(error: unknown, server: McpServer, timeoutMs: number): string {
    if (error instanceof UnsafeUrlError) {
      // The sentence is what the caller sees; where the name pointed stays in the log.
      logger.warn({ serverId: server.id, reason: error.reason, detail: error.detail }, 'server URL refused by the URL policy');
      return `refused to connect: ${error.message}`;
    }
    if (error instanceof SecretDecryptionError) return `cannot decrypt the master token: ${error.message}`;
    if (error instanceof McpConnectionError) return storableText(error.message);
    return storableText(describeMcpError(error, server.url, timeoutMs).message);
  }

  async function withServer<T>(
    ref: string | McpServer,
    fn: (session: ServerSession) => Promise<T>,
    options: WithServerOptions = {},
  ): Promise<T> {
    const server = await load(ref);
    try {
      await assertSafeUrl(server.url, policy);
      const token = openSecret(
        config.encryptionKeys,
        { keyId: server.masterTokenKeyId, ciphertext: server.masterTokenCiphertext },
        masterTokenContext(server.id),
      );
      const since = performance.now();
      const result = await mcp.withConnection(
        { serverId: server.id, url: server.url, transport: server.transport, token },
        (connection) => fn({ server, connection, since }),
        options.canRetry,
      );
      return storable(result);
    } catch (error) {
      // The activity's own verdicts pass through untranslated.
      if (error instanceof ApplicationFailure || error instanceof CancelledFailure) throw error;
      throw new ServerCallFailed(failureText(error, server, options.timeoutMs ?? config.mcp.timeoutMs), { cause: error });
    }
  }

  return { withServer };
}

export type ServerGateway = ReturnType<typeof serverGateway>;
