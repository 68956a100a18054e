import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { loadConfig } from '../lib/config';
import { TRACING_OFF, type Tracing } from '../lib/tracing';
import { createTestContext } from '../test/harness';
import { SYSTEM_CHECK_WORKFLOW, type SystemCheckWorkflow } from '../workflows/contracts/system-check';
import { createWorkerDeps } from './deps';
import { createWorker, WORKFLOW_INTERCEPTORS_PATH, WORKFLOWS_PATH, workflowSource } from './worker';

/** Enough of a config for workflowSource: the bundle path is all it reads. */
function configWith(bundlePath?: string) {
  return loadConfig({
    DATABASE_URL: 'postgres://u:p@127.0.0.1:5432/db',
    JWT_ACCESS_SECRET: 'a'.repeat(43),
    JWT_REFRESH_SECRET: 'b'.repeat(43),
    ENCRYPTION_KEYS: `k:${Buffer.alloc(32, 1).toString('base64')}`,
    ...(bundlePath ? { WORKFLOW_BUNDLE_PATH: bundlePath } : {}),
  });
}

const TRACING_ON = { enabled: true } as unknown as Tracing;

describe('the workflow code a worker loads', () => {
  let dir: string;
  let prebuilt: { compiled: boolean; traced: string; untraced: string };
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'mcp-fleet-bundles-'));
    prebuilt = { compiled: true, traced: path.join(dir, 'workflow-bundle.js'), untraced: path.join(dir, 'workflow-bundle.untraced.js') };
    writeFileSync(prebuilt.traced, '// traced');
    writeFileSync(prebuilt.untraced, '// untraced');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is the prebuilt bundle without the tracing interceptors when tracing is off, the one with them when it is on', () => {
    expect(workflowSource({ config: configWith(), tracing: TRACING_OFF }, prebuilt)).toEqual({
      workflowBundle: { codePath: prebuilt.untraced },
    });
    expect(workflowSource({ config: configWith(), tracing: TRACING_ON }, prebuilt)).toEqual({
      workflowBundle: { codePath: prebuilt.traced },
    });
  });

  it('is the traced prebuilt bundle when a build made no untraced one, whatever the tracing', () => {
    const older = { ...prebuilt, untraced: path.join(dir, 'absent.js') };
    expect(workflowSource({ config: configWith(), tracing: TRACING_OFF }, older)).toEqual({
      workflowBundle: { codePath: prebuilt.traced },
    });
  });

  it('bundles workflows/ at start with the tracing interceptors only when tracing is on', () => {
    const fromSource = { ...prebuilt, compiled: false };
    expect(workflowSource({ config: configWith(), tracing: TRACING_OFF }, fromSource)).toEqual({
      workflowsPath: WORKFLOWS_PATH,
      interceptors: { workflowModules: [] },
    });
    expect(workflowSource({ config: configWith(), tracing: TRACING_ON }, fromSource)).toEqual({
      workflowsPath: WORKFLOWS_PATH,
      interceptors: { workflowModules: [WORKFLOW_INTERCEPTORS_PATH] },
    });
  });

  it('is what WORKFLOW_BUNDLE_PATH names, or an explicit bundle, as it was', () => {
    expect(workflowSource({ config: configWith('/srv/bundle.js'), tracing: TRACING_OFF }, prebuilt)).toEqual({
      workflowBundle: { codePath: '/srv/bundle.js' },
    });
    const bundle = { code: '// given', sourceMap: '' };
    expect(workflowSource({ config: configWith('/srv/bundle.js'), tracing: TRACING_OFF, workflowBundle: bundle }, prebuilt)).toEqual({
      workflowBundle: bundle,
    });
  });
});

describe('a worker with tracing off', () => {
  it('runs workflows whose histories replay on the code with the tracing interceptors (tracing switched on at a restart)', async () => {
    const ctx = await createTestContext();
    const taskQueue = `untraced-${randomUUID()}`;
    // No WORKFLOW_BUNDLE_PATH: the worker bundles workflows/ at start, without the interceptors.
    const config = { ...ctx.config, temporal: { ...ctx.config.temporal, taskQueue, workflowBundlePath: undefined } };
    const { deps, close } = await createWorkerDeps(config, {
      orm: ctx.orm,
      logger: ctx.logger,
      temporalClient: ctx.temporal.client,
      webhookOutbox: false,
    });
    try {
      const worker = await createWorker(deps);
      const history = await worker.runUntil(async () => {
        const handle = await ctx.temporal.client.workflow.start<SystemCheckWorkflow>(SYSTEM_CHECK_WORKFLOW, {
          taskQueue,
          workflowId: `untraced-system-check-${randomUUID()}`,
        });
        await handle.result();
        return handle.fetchHistory();
      });
      // The harness's bundle is the traced one (test/global-setup.ts).
      await expect(
        Worker.runReplayHistory({ workflowBundle: { codePath: ctx.config.temporal.workflowBundlePath! } }, history),
      ).resolves.toBeUndefined();
    } finally {
      await close();
      await ctx.close();
    }
  }, 180_000);
});
