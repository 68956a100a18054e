import type { Config } from '../lib/config';
import { TRACING_OFF, type Tracing } from '../lib/tracing';
import { WORKFLOW_INTERCEPTORS_PATH, WORKFLOWS_PATH, workflowSource } from './worker';

/** Only what workflowSource reads of the worker's deps. */
function deps(tracing: boolean, workflowBundlePath?: string) {
  return {
    config: { temporal: { workflowBundlePath } } as Config,
    tracing: tracing ? ({ enabled: true } as Tracing) : TRACING_OFF,
  };
}

const PREBUILT = { traced: '/dist/workflow-bundle.js', untraced: '/dist/workflow-bundle.untraced.js' };

describe('the workflow code a worker loads', () => {
  it('is the prebuilt bundle without the tracing interceptors when tracing is off, the traced one when it is on', () => {
    expect(workflowSource(deps(false), PREBUILT)).toEqual({ workflowBundle: { codePath: PREBUILT.untraced }, workflowModules: [] });
    expect(workflowSource(deps(true), PREBUILT)).toEqual({
      workflowBundle: { codePath: PREBUILT.traced },
      workflowModules: [WORKFLOW_INTERCEPTORS_PATH],
    });
  });

  it('falls back to the traced bundle when a build wrote only that one', () => {
    expect(workflowSource(deps(false), { traced: PREBUILT.traced })).toEqual({
      workflowBundle: { codePath: PREBUILT.traced },
      workflowModules: [],
    });
  });

  it('is WORKFLOW_BUNDLE_PATH, whatever tracing says, when the operator names one', () => {
    for (const tracing of [false, true])
      expect(workflowSource(deps(tracing, '/opt/bundle.js'), PREBUILT).workflowBundle).toEqual({ codePath: '/opt/bundle.js' });
  });

  it('bundles at start with the tracing interceptors only when tracing is on', () => {
    expect(workflowSource(deps(false), {})).toEqual({ workflowsPath: WORKFLOWS_PATH, workflowModules: [] });
    expect(workflowSource(deps(true), {})).toEqual({ workflowsPath: WORKFLOWS_PATH, workflowModules: [WORKFLOW_INTERCEPTORS_PATH] });
  });
});
