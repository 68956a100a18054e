import { randomUUID } from 'node:crypto';
import { startBenchStack } from './stack';
async function main() {
  const stack = await startBenchStack();
  await stack.startWorker();
  const c = stack.deps.temporal.client;
  const tq = stack.deps.config.temporal.taskQueue;
  const xs: number[] = [];
  for (let i = 0; i < 30; i++) { const s = performance.now(); await c.workflow.execute('systemCheck', { taskQueue: tq, workflowId: randomUUID() }); xs.push(performance.now() - s); }
  console.log('p50', xs.sort((a, b) => a - b)[15]);
  await stack.stop();
}
void main();
