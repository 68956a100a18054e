/**
 * The local reference host `npm run dev` starts beside the control plane (scripts/dev.ts): its
 * engine, workspaces and token, and the checks run through Temporal once everything is up (the
 * host's server checked, the local model's assistant validated), so that neither waits for a person.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startAgentProvision, startServerCheck } from '../domain/temporal';
import type { Config } from '../lib/config';
import { connectTemporal, createTemporalClient } from '../lib/temporal';

/**
 * The engine of the local host: HOST_ENGINE when set; else openai when its three settings are
 * all given (the host reads them itself); else the shell engine, which needs no AI and runs a
 * prompt as a runbook.
 */
export function demoHostEngine(): string {
  if (process.env.HOST_ENGINE) return process.env.HOST_ENGINE;
  return process.env.HOST_OPENAI_BASE_URL && process.env.HOST_OPENAI_API_KEY && process.env.HOST_OPENAI_MODEL ? 'openai' : 'shell';
}

/**
 * The local host's workspaces: outside the checkout and any git repository (a command's git
 * must never find the project's own), one directory per data dir.
 */
export function demoWorkspaceRoot(dataDir: string): string {
  const id = createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
  return path.join(os.tmpdir(), `mcp-fleet-workspaces-${id}`);
}

/** The local reference host's token: generated once, kept beside the other dev secrets. */
export function demoHostToken(dataDir: string): string {
  const file = path.join(dataDir, 'host-token');
  if (!existsSync(file)) writeFileSync(file, randomBytes(24).toString('base64url'), { mode: 0o600 });
  return readFileSync(file, 'utf8').trim();
}

/**
 * Checks the local host once, through the same serverCheck workflow as `POST
 * /api/servers/:id/health`, so that it is not UNKNOWN until someone tests it or the
 * server-health schedule comes round. A check that does not finish is reported, not fatal.
 */
export async function checkDemoServer(config: Config, address: string, serverId: string, organizationId: string): Promise<string> {
  const connection = await connectTemporal(address);
  try {
    const temporal = { client: createTemporalClient(connection, config), taskQueue: config.temporal.taskQueue };
    const handle = await startServerCheck(temporal, { serverId, organizationId, reason: 'health' });
    // A ceiling, not an expectation (the check takes well under a second on an idle machine).
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within 2 min (workflow ${handle.workflowId})`)), 120_000);
    });
    try {
      const result = await Promise.race([handle.result(), timeout]);
      return `${result.status}${result.latencyMs !== null ? ` in ${result.latencyMs} ms` : ''}${result.error ? `: ${result.error}` : ''}`;
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await connection.close();
  }
}

/**
 * Validates the assistant through the agentProvision workflow, as `POST /api/agents/:id/validate`
 * does: the host learns its engine (engine:openai) at provision_agent and keeps it in memory only,
 * so this runs on every start. A validation that fails or does not finish is reported, not fatal.
 */
export async function validateAssistant(
  config: Config,
  address: string,
  run: { agentId: string; organizationId: string; serverId: string; validatedBy: string },
): Promise<string> {
  const connection = await connectTemporal(address);
  try {
    const temporal = { client: createTemporalClient(connection, config), taskQueue: config.temporal.taskQueue };
    const handle = await startAgentProvision(temporal, run);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within 2 min (workflow ${handle.workflowId})`)), 120_000);
    });
    try {
      const result = await Promise.race([handle.result(), timeout]);
      return result.ok ? 'ACTIVE' : `not validated: ${result.error ?? 'the host refused it'}`;
    } finally {
      clearTimeout(timer);
    }
  } finally {
    await connection.close();
  }
}
