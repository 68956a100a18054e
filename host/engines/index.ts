/**
 * The engines a reference host can run agents with, by name (HOST_ENGINE, or an agent's
 * `engine:<name>` capability at provision_agent). Each entry builds its engine from the host's
 * settings; an engine that cannot run here says why in check(), not at its first run.
 */
import type { Engine } from './engine';
import type { Sandbox } from '../sandbox';
import { createClaudeCodeEngine } from './claude-code';
import { createOpenAIEngine } from './openai';
import { createScriptEngine } from './script';
import { createShellEngine } from './shell';

export type { CommandRun, Engine, EngineOutcome, EngineRun } from './engine';

export const ENGINE_NAMES = ['script', 'shell', 'openai', 'claude-code'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

/** What engines may need from the host; each reads its own part. */
export interface EngineSettings {
  /** Whether the host runs commands at all (HOST_ALLOW_COMMANDS). */
  allowCommands: boolean;
  /** script: pause between steps. */
  stepDelayMs: number;
  /** Aborts when the host closes. */
  shutdown: AbortSignal;
  /** The host's environment, for settings an engine reads (HOST_OPENAI_*, a CLI's path). */
  env: NodeJS.ProcessEnv;
  /** Where programs an engine starts itself (the claude-code CLI) run, as the runner's commands do. */
  sandbox: Sandbox;
}

const ENGINES: Record<EngineName, (settings: EngineSettings) => Engine> = {
  script: (settings) => createScriptEngine(settings),
  shell: (settings) => createShellEngine(settings),
  openai: (settings) => createOpenAIEngine(settings),
  'claude-code': (settings) => createClaudeCodeEngine(settings),
};

export function isEngineName(name: string): name is EngineName {
  return (ENGINE_NAMES as readonly string[]).includes(name);
}

/** The engine called `name`; throws for a name no engine has. */
export function createEngine(name: string, settings: EngineSettings): Engine {
  if (!isEngineName(name)) throw new Error(`unknown engine "${name}" (one of ${ENGINE_NAMES.join(', ')})`);
  return ENGINES[name](settings);
}
