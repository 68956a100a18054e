/**
 * Tool benchmarks, each against a baseline measured in the same run:
 *  1. permission check on execute: POST /api/agents/:id/execute → the host receives tools/call,
 *     p50 over 200, for an agent granted 50 installed tools (each with allowed and blocked
 *     commands) against an agent granted none, on the same server, interleaved. Target ≤ 1.1.
 */
import { randomUUID } from 'node:crypto';
import { McpServer, Organization, ServerTool, ServerToolStatus, ToolDefinition } from '../entities';
import { startAgentHost } from '../host/server';
import { executionHandle } from '../domain/temporal';
import { allowedToolsFor } from '../domain/tools/allowed-tools';
import { startBenchStack, validatedAgent, registerBenchAccount } from './stack';

const RUNS = 200;
const WARMUP = 20;
const GRANTED = 50;

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;

export async function benchTools(): Promise<{ pass: boolean }> {
  const host = await startAgentHost({ token: `bench-${randomUUID()}`, stepDelayMs: 1 });
  const stack = await startBenchStack();
  const results: string[] = [];
  let pass = true;
  try {
    await stack.startWorker();
    const call = async (method: string, url: string, body?: unknown, token?: string) => {
      const res = await fetch(`${stack.api.url}${url}`, {
        method,
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.status >= 300) throw new Error(`${method} ${url} → ${res.status} ${JSON.stringify(json)}`);
      return json;
    };
    const { accessToken: token } = await registerBenchAccount(call, 'bench@example.test');
    const server = (await call('POST', '/api/servers', { name: 'bench-host', url: host.url, masterToken: host.token }, token)) as {
      id: string;
    };
    const agent = () => validatedAgent(call, token, server.id);
    const [granted, bare] = [await agent(), await agent()];

    const tools: string[] = [];
    for (let i = 0; i < GRANTED; i++) {
      const tool = (await call(
        'POST',
        '/api/tools',
        { name: `bench-tool-${i}`, category: 'bench', installCommand: 'true', uninstallCommand: 'true', versionCommand: 'echo 1.0.0' },
        token,
      )) as { id: string };
      tools.push(tool.id);
    }
    const permissions = tools.map((toolId) => ({
      toolId,
      canUse: true,
      allowedCommands: ['status', 'log', 'remote'],
      blockedCommands: ['remote add'],
    }));
    await call('PUT', `/api/tools/agent/${granted}/permissions`, { permissions }, token);
    // Installed as the install workflow leaves them (its own benchmark measures installs).
    const em = stack.deps.orm.em.fork();
    const serverRow = await em.findOneOrFail(McpServer, server.id);
    for (const toolId of tools)
      em.create(ServerTool, {
        organization: em.getReference(Organization, serverRow.organization.id),
        server: serverRow,
        tool: em.getReference(ToolDefinition, toolId),
        status: ServerToolStatus.INSTALLED,
        installedVersion: '1.0.0',
      });
    await em.flush();

    const at = () => performance.timeOrigin + performance.now();
    const dispatch = async (agentId: string): Promise<{ ms: number; allowed: number }> => {
      const t0 = at();
      const { executionId } = (await call('POST', `/api/agents/${agentId}/execute`, { prompt: 'dispatch [steps:1]' }, token)) as {
        executionId: string;
      };
      const received = await host.waitForCall('execute_prompt', (c) => c.args.executionId === executionId, 30_000);
      // Each run finishes before the next is timed: dispatch latency, not the previous run's wrap-up.
      await executionHandle(stack.deps.temporal, executionId).result();
      return { ms: received.at - t0, allowed: (received.args.allowedTools as unknown[] | undefined)?.length ?? 0 };
    };
    const withTools: number[] = [];
    const without: number[] = [];
    let sent = 0;
    for (let i = 0; i < RUNS + WARMUP; i++) {
      // Alternating which goes first, so neither series always follows the other.
      const order = i % 2 ? [granted, bare] : [bare, granted];
      for (const agentId of order) {
        const run = await dispatch(agentId);
        if (i < WARMUP) continue;
        if (agentId === granted) {
          withTools.push(run.ms);
          sent = run.allowed;
        } else without.push(run.ms);
      }
    }
    const ratio = pct(withTools, 50) / pct(without, 50);
    results.push(
      `1. permission check on execute (${RUNS} each, interleaved): ${GRANTED} granted tools → host tools/call p50 ${ms(pct(withTools, 50))} p95 ${ms(pct(withTools, 95))}; none p50 ${ms(pct(without, 50))} p95 ${ms(pct(without, 95))}; allowedTools sent: ${sent}; ratio p50 ${ratio.toFixed(3)} (target ≤ 1.1)`,
    );
    pass &&= sent === GRANTED && ratio <= 1.1;

    // What the difference is made of: the one query that builds allowedTools, alone.
    const query = async (agentId: string) => {
      const t0 = at();
      await allowedToolsFor(stack.deps.orm.em.fork(), agentId);
      return at() - t0;
    };
    const q50: number[] = [];
    const q0: number[] = [];
    for (let i = 0; i < 500; i++) {
      q50.push(await query(granted));
      q0.push(await query(bare));
    }
    results.push(`   allowedToolsFor alone (500 each): ${GRANTED} tools p50 ${ms(pct(q50, 50))}, none p50 ${ms(pct(q0, 50))}`);
  } finally {
    process.stdout.write(`tools bench\n${results.map((r) => `  ${r}`).join('\n')}\n`);
    await stack.stop();
    await host.close();
  }
  return { pass };
}

if (require.main === module) {
  benchTools()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
