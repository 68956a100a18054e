import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { explainHostFailure, type ToolCommands } from '../domain/tools/host-install';
import { CheckToolResult, hostToolCall, InstallToolResult } from '../lib/host-contract';
import { toolResultText, type McpConnection } from '../lib/mcp-client';
import type { ActivityDeps } from './deps';
import type { ServerGateway } from './server-gateway';

type McpClient = McpConnection['client'];

/** Version commands are quick, but a cold `apt` or `npm` may take seconds to answer one. */
const MIN_CHECK_TIMEOUT_MS = 30_000;
const LOG_TAIL_CHARS = 4096;

/** What the tool activities use: the database, the MCP timeouts, the log, and the way to a server. */
export type ToolDeps = Pick<ActivityDeps, 'orm' | 'config' | 'logger'> & { gateway: ServerGateway };

/** A host's answer to check_tool, or why there was none. */
export type CheckReading = { answered: true; installed: boolean; version?: string; log: string } | { answered: false; reason: string };
export type CheckAnswer = Extract<CheckReading, { answered: true }>;

export function tail(text: string): string {
  return text.length > LOG_TAIL_CHARS ? text.slice(-LOG_TAIL_CHARS) : text;
}

export function logOf(structuredContent: unknown): string {
  const parsed = InstallToolResult.pick({ log: true }).safeParse(structuredContent);
  return parsed.success ? parsed.data.log : '';
}

export async function checkTool(
  config: ActivityDeps['config'],
  client: McpClient,
  commands: ToolCommands,
  signal?: AbortSignal,
): Promise<CheckReading> {
  const checkTimeoutMs = Math.max(config.mcp.timeoutMs, MIN_CHECK_TIMEOUT_MS);
  const call = hostToolCall('check_tool', {
    name: commands.name,
    versionCommand: commands.versionCommand,
    ...(commands.versionRegex ? { versionRegex: commands.versionRegex } : {}),
  });
  const result = (await client.callTool(call, undefined, { signal, timeout: checkTimeoutMs })) as CallToolResult;
  if (result.isError)
    return { answered: false, reason: explainHostFailure('install', toolResultText(result.content), logOf(result.structuredContent)) };
  const reading = CheckToolResult.safeParse(result.structuredContent);
  if (!reading.success) return { answered: false, reason: 'the server answered check_tool without saying whether the tool is installed' };
  return {
    answered: true,
    installed: reading.data.installed,
    ...(reading.data.version ? { version: reading.data.version } : {}),
    log: reading.data.log ?? '',
  };
}
