/** `npm run bench`: every benchmark, each printing ratios against a baseline measured in the same run. */
import { benchAuthMe } from './auth-me.bench';
import { benchExecutions } from './executions.bench';
import { benchServerTest } from './server-test.bench';
import { benchTools } from './tools.bench';
import { benchToolInstall } from './tool-install.bench';
import { benchTasks } from './tasks.bench';
import { benchReattach } from './reattach.bench';
import { benchSandbox } from './sandbox.bench';
import { benchTracing } from './tracing.bench';

async function main(): Promise<void> {
  const results = [
    { name: 'auth-me', ...(await benchAuthMe()) },
    { name: 'server-test', ...(await benchServerTest()) },
    { name: 'executions', ...(await benchExecutions()) },
    { name: 'tools', ...(await benchTools()) },
    { name: 'tool-install', ...(await benchToolInstall()) },
    { name: 'tasks', ...(await benchTasks()) },
    { name: 'reattach', ...(await benchReattach()) },
    { name: 'sandbox', ...(await benchSandbox()) },
    { name: 'tracing', ...(await benchTracing()) },
  ];
  const failed = results.filter((r) => !r.pass);
  process.stdout.write(`\n${results.map((r) => `${r.pass ? 'PASS' : 'FAIL'} ${r.name}`).join('\n')}\n`);
  process.exit(failed.length ? 1 : 0);
}

void main();
