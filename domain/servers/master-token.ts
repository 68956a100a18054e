/** AAD for a server's master token: a ciphertext copied to another row does not open. */
export function masterTokenContext(serverId: string): string {
  return `mcp_servers:${serverId}:master_token`;
}
