import type { EntityManager } from '@mikro-orm/postgresql';
import { Agent, AgentStatus, McpServer, type McpTransport, Organization, ServerStatus, User } from '../../entities';
import type { Config } from '../../lib/config';
import { lastFour, sealSecret } from '../../lib/crypto';
import { checkUrlSyntax, UnsafeUrlError } from '../../lib/ssrf';
import { urlPolicy } from '../../lib/url-policy';
import type { Actor } from '../actor';
import { audit } from '../audit';
import { AppError, fieldError, uniqueOrConflict } from '../errors';
import { publishEventOnCommit } from '../events';
import { masterTokenContext } from './master-token';

/**
 * What changes a registered MCP server. Each command writes through `em` and flushes;
 * authorisation is the caller's, on the rows it loaded.
 */

/** The key ring that seals master tokens and the URL policy server addresses follow. */
export type ServerSettings = Pick<Config, 'encryptionKeys' | 'isProduction' | 'mcp'>;

export interface NewServer {
  name: string;
  url: string;
  masterToken: string;
  transport: McpTransport;
  description?: string;
}

export interface ServerChanges {
  name?: string;
  url?: string;
  masterToken?: string;
  transport?: McpTransport;
  /** null: no description any more. */
  description?: string | null;
}

function nameTaken(): AppError {
  return AppError.conflict('name_taken', 'This organisation already has a server with that name');
}

/** The URL as it will be stored, or a field-level 400 when the policy refuses its form. */
function acceptedUrl(settings: ServerSettings, raw: string): string {
  try {
    return checkUrlSyntax(raw, urlPolicy(settings)).toString();
  } catch (error) {
    if (error instanceof UnsafeUrlError) throw fieldError('body.url', error.message, error.reason);
    throw error;
  }
}

/** Encrypted under the newest key and bound to the row; only the last characters stay readable. */
function sealMasterToken(settings: ServerSettings, server: McpServer, token: string): void {
  const sealed = sealSecret(settings.encryptionKeys, token, masterTokenContext(server.id));
  server.masterTokenCiphertext = sealed.ciphertext;
  server.masterTokenKeyId = sealed.keyId;
  server.masterTokenLast4 = lastFour(token) || undefined;
}

/** Registers a server; its status stays UNKNOWN until a check reaches it. */
export async function createServer(em: EntityManager, settings: ServerSettings, actor: Actor, input: NewServer): Promise<McpServer> {
  const organization = em.getReference(Organization, actor.organizationId);
  const url = acceptedUrl(settings, input.url);
  if (await em.count(McpServer, { organization, name: input.name })) throw nameTaken();
  const server = em.create(McpServer, {
    organization,
    name: input.name,
    url,
    transport: input.transport,
    description: input.description,
    masterTokenCiphertext: '',
    masterTokenKeyId: '',
    createdBy: actor.userId ? em.getReference(User, actor.userId) : undefined,
  });
  sealMasterToken(settings, server, input.masterToken);
  audit(em, actor, {
    action: 'server.create',
    resourceType: 'server',
    resourceId: server.id,
    changes: { name: server.name, url, transport: server.transport },
  });
  await uniqueOrConflict(() => em.flush(), nameTaken);
  return server;
}

/**
 * Changes a server. A URL on another origin needs the master token again; a new URL, transport
 * or token resets what a check had found, and that status change is announced when `tx`
 * commits. Runs in the caller's transaction, so a caller may still check its permission on
 * the result and roll the change back.
 */
export async function updateServer(
  tx: EntityManager,
  settings: ServerSettings,
  actor: Actor,
  server: McpServer,
  input: ServerChanges,
): Promise<McpServer> {
  const changes: Record<string, unknown> = {};
  const set = <K extends 'name' | 'url' | 'transport' | 'description'>(key: K, value: McpServer[K] | undefined) => {
    if (value === undefined || value === server[key]) return;
    changes[key] = { from: server[key] ?? null, to: value ?? null };
    server[key] = value;
  };
  const url = input.url !== undefined ? acceptedUrl(settings, input.url) : undefined;
  // The stored token was given for the old origin; sending it to a new one would hand it to
  // whoever runs that host. A path on the same origin is the same server's operator.
  if (url !== undefined && input.masterToken === undefined && new URL(url).origin !== new URL(server.url).origin) {
    throw new AppError(400, 'master_token_required', 'A URL on another origin needs the master token again', [
      {
        path: 'body.masterToken',
        message: 'required when the URL moves to another scheme, host or port; the stored token is never sent to a new origin',
        code: 'required',
      },
    ]);
  }
  set('name', input.name);
  set('url', url);
  set('transport', input.transport);
  if (input.description === null && server.description !== undefined) {
    changes.description = { from: server.description, to: null };
    server.description = undefined;
  } else if (input.description) set('description', input.description);
  if (input.masterToken !== undefined) {
    sealMasterToken(settings, server, input.masterToken);
    // Recorded as a fact, never as a value.
    changes.masterToken = { rotated: true };
  }
  const previousStatus = server.status;
  if (changes.url || changes.transport || changes.masterToken) {
    // The next check talks to a different target: what we knew no longer holds.
    server.status = ServerStatus.UNKNOWN;
    server.lastError = undefined;
  }
  if (Object.keys(changes).length) audit(tx, actor, { action: 'server.update', resourceType: 'server', resourceId: server.id, changes });
  await uniqueOrConflict(() => tx.flush(), nameTaken);
  if (previousStatus !== server.status) {
    await publishEventOnCommit(tx, {
      type: 'server:status',
      organizationId: actor.organizationId,
      serverId: server.id,
      status: server.status,
      previousStatus,
      reason: 'connection settings changed',
      at: new Date().toISOString(),
    });
  }
  return server;
}

/**
 * Removes a server. With agents it is refused unless `force`; forced, its agents are switched
 * off first and go with it. Runs in the caller's transaction.
 */
export async function deleteServer(tx: EntityManager, actor: Actor, server: McpServer, options: { force: boolean }): Promise<void> {
  const agents = await tx.count(Agent, { server });
  if (agents > 0 && !options.force) {
    throw AppError.conflict('server_has_agents', `The server still has ${agents} agent(s); delete them first or pass ?force=true`, {
      agents,
    });
  }
  if (agents > 0) await tx.nativeUpdate(Agent, { server }, { status: AgentStatus.INACTIVE });
  audit(tx, actor, {
    action: 'server.delete',
    resourceType: 'server',
    resourceId: server.id,
    changes: { name: server.name, url: server.url, force: options.force, agents },
  });
  tx.remove(server);
  await tx.flush();
}
