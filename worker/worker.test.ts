import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../lib/config';
import { TRACING_OFF, type Tracing } from '../lib/tracing';
import { WORKFLOW_INTERCEPTORS_PATH, WORKFLOWS_PATH, workflowSource } from './worker';

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
