import type { McpServer } from '../../../entities';
import { SANDBOX_META_KEY } from '../../../lib/host-contract';

/** How the host said, at its last check, that agents' commands run on it (execute_prompt's meta), or null. */
function sandboxOf(server: McpServer): string | null {
  const said = server.toolsSnapshot?.find((t) => t.name === 'execute_prompt')?.meta?.[SANDBOX_META_KEY];
  return typeof said === 'string' ? said : null;
}

export function presentServer(server: McpServer) {
  return {
    id: server.id,
    name: server.name,
    description: server.description ?? null,
    url: server.url,
    transport: server.transport,
    // Only that a token is set, and its last characters to tell tokens apart.
    masterToken: { set: true, last4: server.masterTokenLast4 || null },
    status: server.status,
    lastCheckAt: server.lastCheckAt?.toISOString() ?? null,
    lastLatencyMs: server.lastLatencyMs ?? null,
    lastError: server.lastError ?? null,
    serverInfo: server.serverInfo ?? null,
    protocolVersion: server.protocolVersion ?? null,
    tools: (server.toolsSnapshot ?? []).map((t) => t.name),
    sandbox: sandboxOf(server),
    toolsHash: server.toolsHash ?? null,
    lastToolsChange: server.lastToolsChange ?? null,
    createdAt: server.createdAt.toISOString(),
    updatedAt: server.updatedAt.toISOString(),
  };
}
