/**
 * Runs the reference MCP agent host as a program (the demo server of `npm run dev`, or a
 * stand-in host for manual tests).
 *
 *   HOST_TOKEN=secret HOST_ALLOW_COMMANDS=true node --import tsx host/main.ts
 *
 * HOST_TOKEN (required) is the bearer token clients must send; HOST_PORT (default 4100),
 * HOST_BIND (default 127.0.0.1); HOST_ALLOW_COMMANDS=true lets install_tool, uninstall_tool
 * and check_tool run their shell commands on this machine, and agents run the commands of
 * their allowed tools. HOST_ENGINE (default shell) is the engine agents run on unless their
 * capabilities say `engine:<name>`; HOST_WORKSPACE_ROOT (default mcp-fleet-workspaces under
 * the OS temp dir) holds one workspace per agent; HOST_RUN_WALL_TIME_MS and
 * HOST_RUN_OUTPUT_BYTES bound each run (docs/host-protocol.md, "Engines"). HOST_DATA_DIR (default
 * none: tasks in memory only) keeps MCP tasks across restarts; HOST_INPUT_TIMEOUT_MS (default a
 * day) is how long a question waits for its answer (docs/host-protocol.md, "Tasks").
 * HOST_SANDBOX (default bwrap) runs each agent command in a bubblewrap sandbox (BWRAP_PATH,
 * HOST_SANDBOX_*: docs/host-protocol.md, "The sandbox"); `off` runs them on this machine as the
 * host's own user, and says so loudly. HOST_METRICS_PORT (default 9466, 0: off) and
 * HOST_METRICS_HOST (default 127.0.0.1) serve Prometheus /metrics (docs/metrics.md).
 */
/* eslint-disable no-restricted-properties -- a separate program with its own HOST_* settings, not the control plane's lib/config.ts */
import { loadTracingConfig } from '../lib/tracing-config';
import { startTracing } from '../lib/tracing';
import { createMetricsRegistry, startMetricsServer } from '../lib/metrics';
import { hostSettings } from './host-settings';
import { HostMetrics } from './metrics';
import { startAgentHost } from './server';

async function main(): Promise<void> {
  const { metrics: metricsEndpoint, ...settings } = hostSettings(process.env);
  // OTEL_* as the control plane reads them (docs/tracing.md); service.name mcp-fleet-host.
  const tracing = startTracing(loadTracingConfig(process.env), 'host');
  const metrics = new HostMetrics(createMetricsRegistry());
  const host = await startAgentHost({ ...settings, env: process.env, metrics });
  const metricsServer = await startMetricsServer(metrics.registry, metricsEndpoint, (error) =>
    process.stderr.write(`collecting metrics failed: ${error instanceof Error ? error.message : String(error)}\n`),
  );
  if (metricsServer) process.stdout.write(`metrics on ${metricsServer.url}\n`);
  // The engine's own check, so that an operator sees at once why its agents would be refused.
  const unusable = await host.engine.check();
  process.stdout.write(
    `agent host listening on ${host.url} (engine ${settings.engine}, workspaces in ${settings.workspaceRoot}${settings.allowCommands ? ', commands allowed' : ''})\n`,
  );
  if (unusable) process.stdout.write(`warning: the ${settings.engine} engine cannot run agents here: ${unusable}\n`);
  if (settings.allowCommands && settings.sandbox.mode === 'off') {
    process.stderr.write(
      "\n!!! HOST_SANDBOX=off: agents' commands run UNSANDBOXED on this machine, as this host's user, with its files and network in reach.\n" +
        '!!! Only for agents you trust; tools/list tells the control plane, which shows the server as unsandboxed.\n\n',
    );
  } else if (settings.allowCommands) {
    const unsandboxable = await host.sandbox.unusable();
    if (unsandboxable) process.stdout.write(`warning: agents' commands cannot run here (provision_agent refuses them): ${unsandboxable}\n`);
    else process.stdout.write("agents' commands run in a bubblewrap sandbox each\n");
  }

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
    Promise.all([host.close(), metricsServer?.close()]).then(
      () =>
        tracing.shutdown().then(
          () => process.exit(0),
          () => process.exit(0),
        ),
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
