/**
 * `npm run bench`: every benchmark, each printing ratios against a baseline measured in the same
 * run; `npm run bench -- webhooks tracing` runs only the ones named.
 */
import { benchAuthMe } from './auth-me.bench';
import { benchDelegation } from './delegation.bench';
import { benchExecutions } from './executions.bench';
import { benchFanout } from './fanout.bench';
import { benchServerTest } from './server-test.bench';
import { benchTools } from './tools.bench';
import { benchToolInstall } from './tool-install.bench';
import { benchTasks } from './tasks.bench';
import { benchReattach } from './reattach.bench';
import { benchScale } from './scale.bench';
import { benchSandbox } from './sandbox.bench';
import { benchTracing } from './tracing.bench';
import { benchWebhooks } from './webhooks.bench';

const BENCHES: Record<string, () => Promise<{ pass: boolean }>> = {
  'auth-me': benchAuthMe,
  'server-test': benchServerTest,
  executions: benchExecutions,
  tools: benchTools,
  'tool-install': benchToolInstall,
  tasks: benchTasks,
  reattach: benchReattach,
  sandbox: benchSandbox,
  tracing: benchTracing,
  webhooks: benchWebhooks,
  fanout: benchFanout,
  scale: benchScale,
  delegation: benchDelegation,
};

async function main(): Promise<void> {
  // Options (`--calls=N`, …) go to the benchmarks; other words name the ones to run.
  const named = process.argv.slice(2).filter((a) => !a.startsWith('--'));
  const unknown = named.filter((name) => !(name in BENCHES));
  if (unknown.length) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}\n`);
    process.exit(2);
  }
  const results = [];
  for (const name of named.length ? named : Object.keys(BENCHES)) results.push({ name, ...(await BENCHES[name]!()) });
  const failed = results.filter((r) => !r.pass);
  process.stdout.write(`\n${results.map((r) => `${r.pass ? 'PASS' : 'FAIL'} ${r.name}`).join('\n')}\n`);
  process.exit(failed.length ? 1 : 0);
}

void main();
