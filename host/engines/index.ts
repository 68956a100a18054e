/**
 * The engines a reference host can run agents with, by name (HOST_ENGINE, or an agent's
 * `engine:<name>` capability at provision_agent). Each entry builds its engine from the host's
 * settings; an engine that cannot run here says why in check(), not at its first run.
 */
import type { Engine, EngineSettings } from './engine';
import { createClaudeCodeEngine } from './claude-code';
import { createOpenAIEngine } from './openai';
import { createScriptEngine } from './script';
import { createShellEngine } from './shell';

export type { CommandRun, Engine, EngineOutcome, EngineRun, EngineSettings } from './engine';

export const ENGINE_NAMES = ['script', 'shell', 'openai', 'claude-code'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];

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
