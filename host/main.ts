/**
 * Runs the reference MCP agent host as a program (the demo server of `npm run dev`, or a
 * stand-in host for manual tests).
 *
 *   HOST_TOKEN=secret node --import tsx host/main.ts
 *
 * HOST_TOKEN (required) is the bearer token clients must send; HOST_PORT (default 4100),
 * HOST_BIND (default 127.0.0.1); HOST_ALLOW_COMMANDS=true lets install_tool, uninstall_tool
 * and check_tool run their shell commands on this machine, and agents run the commands of
 * their allowed tools (`[run:...]`).
 */
/* eslint-disable no-restricted-properties -- a separate program with its own HOST_* settings, not the control plane's lib/config.ts */
import { startAgentHost } from './server';

const DEFAULT_PORT = 4100;

function parsePort(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_PORT;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`HOST_PORT must be a port number, got "${value}"`);
  return port;
}

async function main(): Promise<void> {
  const token = process.env.HOST_TOKEN;
  if (!token) throw new Error('HOST_TOKEN is required (the bearer token clients must send)');
  const port = parsePort(process.env.HOST_PORT);
  const bind = process.env.HOST_BIND || '127.0.0.1';
  const allowCommands = process.env.HOST_ALLOW_COMMANDS === 'true';

  const host = await startAgentHost({ token, port, host: bind, allowCommands });
  process.stdout.write(`agent host listening on ${host.url}${allowCommands ? ' (shell commands allowed)' : ''}\n`);

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      // A second signal means the operator does not want to wait for the graceful close.
      process.exit(1);
    }
    stopping = true;
    process.stdout.write(`agent host stopping (${signal})\n`);
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    host.close().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`agent host close failed: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`agent host failed: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
