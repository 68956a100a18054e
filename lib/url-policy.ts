import type { Config } from './config';
import { parseHostList, type UrlPolicy } from './ssrf';

/** The URL policy for MCP server addresses, from the configuration. */
export function urlPolicy(config: Pick<Config, 'isProduction' | 'mcp'>): UrlPolicy {
  return { production: config.isProduction, allow: parseHostList(config.mcp.urlAllowlist), deny: parseHostList(config.mcp.urlDenylist) };
}
