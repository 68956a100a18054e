// Every workflow the worker runs; deterministic code only (no Node built-ins, api/ or entities/).
export * from './system-check.workflow';
export * from './server-check.workflow';
export * from './agent-execution.workflow';
export * from './agent-provision.workflow';
export * from './agent-retire.workflow';
export * from './tool-install.workflow';
export * from './task-run.workflow';
