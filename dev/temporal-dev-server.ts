import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { connectTemporal, devServerDynamicConfigFlags, searchAttributeFlags, SEARCH_ATTRIBUTE_NAMES } from '../lib/temporal';
import { findTemporalCli, TEMPORAL_CLI_HELP } from './temporal-cli';
import type { Logger } from '../lib/logger';

export interface TemporalDevServerOptions {
  port: number;
  /** Omit for a headless server (tests). */
  uiPort?: number;
  /** SQLite file; omit for an in-memory server (tests). */
  dbFile?: string;
  namespace: string;
  cliPath?: string;
  logger?: Logger;
  startTimeoutMs?: number;
  /** More `temporal server start-dev` flags, after mcp-fleet's own: a later `--dynamic-config-value` of the same key wins. */
  extraArgs?: string[];
}

export interface TemporalDevServer {
  address: string;
  uiUrl?: string;
  source: string;
  pid?: number;
  stop(): Promise<void>;
}

async function waitUntilServing(
  address: string,
  namespace: string,
  child: ChildProcess | undefined,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) {
      throw new Error(`temporal server start-dev exited with code ${child.exitCode}:\n${output()}`);
    }
    try {
      const connection = await connectTemporal(address);
      try {
        await connection.withDeadline(Date.now() + 2000, () => connection.workflowService.describeNamespace({ namespace }));
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(`Temporal dev server at ${address} did not become ready in ${timeoutMs} ms: ${String(lastError)}\n${output()}`);
}

/** Starts `temporal server start-dev` with mcp-fleet's search attributes registered and its dynamic config (lib/temporal.ts). */
export async function startTemporalDevServer(options: TemporalDevServerOptions): Promise<TemporalDevServer> {
  // A ceiling for a loaded machine; the dev server is ready in a few seconds when idle.
  const { port, uiPort, dbFile, namespace, logger, startTimeoutMs = 180_000 } = options;
  const cli = await findTemporalCli({ cliPath: options.cliPath, logger });
  const address = `127.0.0.1:${port}`;

  if (cli.kind === 'sdk-download') {
    // Machines with internet and no CLI: the SDK downloads and runs the same dev server.
    const { TestWorkflowEnvironment } = await import('@temporalio/testing');
    try {
      const env = await TestWorkflowEnvironment.createLocal({
        server: {
          ip: '127.0.0.1',
          port,
          namespace,
          dbFilename: dbFile,
          ui: uiPort !== undefined,
          uiPort,
          extraArgs: [...searchAttributeFlags(), ...devServerDynamicConfigFlags(), ...(options.extraArgs ?? [])],
        },
      });
      return {
        address,
        uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
        source: 'Temporal SDK download',
        stop: () => env.teardown(),
      };
    } catch (error) {
      throw new Error(`The Temporal SDK could not download the CLI (${String(error)}).\n${TEMPORAL_CLI_HELP}`, { cause: error });
    }
  }

  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
    ...searchAttributeFlags(),
    ...devServerDynamicConfigFlags(),
    ...(options.extraArgs ?? []),
  ];
  if (uiPort !== undefined) args.push('--ui-port', String(uiPort), '--ui-ip', '127.0.0.1', '--ui-disable-news-fetch');
  else args.push('--headless');
  if (dbFile) {
    mkdirSync(path.dirname(dbFile), { recursive: true });
    args.push('--db-filename', dbFile);
  }
  // Its own process group: Ctrl-C in the dev terminal reaches it only through our orderly stop.
  const child = spawn(cli.path, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);

  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000).unref())]);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  try {
    await waitUntilServing(address, namespace, child, startTimeoutMs, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  logger?.debug({ address, searchAttributes: SEARCH_ATTRIBUTE_NAMES, source: cli.source }, 'temporal dev server ready');
  return { address, uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : undefined, source: cli.source, pid: child.pid, stop };
}
