/**
 * How the reference host runs an agent's tool commands (`[run:...]` in a prompt): only a tool
 * the platform sent in `allowedTools`, only a command of it that the entry allows and does not
 * block, and only on a host whose operator lets it run commands at all. The command line is
 * split into a program and its arguments and run with no shell, so the program's name is the
 * tool that was checked.
 */
import { allowedToolScopes, type ExecutePromptArgs } from '../lib/host-contract';
import { commandRefusal, splitCommandLine } from '../lib/tool-commands';
import { runProgram, tail } from './shell';

export type ToolRun =
  | { tool: string; refused: string }
  | { tool: string; refused?: undefined; ok: boolean; output: string; exitCode?: number; error?: string };

export type RunTool = (commandLine: string, signal: AbortSignal) => Promise<ToolRun>;

/** The runner of one execute_prompt call, bound to what that call allows. */
export function toolRunner(allowedTools: ExecutePromptArgs['allowedTools'], allowCommands: boolean): RunTool {
  const scopes = allowedToolScopes(allowedTools);
  return async (commandLine, signal) => {
    const argv = splitCommandLine(commandLine);
    const tool = argv?.[0] ?? commandLine.trim().split(/\s+/)[0] ?? '';
    if (!argv?.length || !tool) return { tool, refused: `"${commandLine}" is not a command line` };
    // A path would run some other program under a granted name.
    if (tool.includes('/')) return { tool, refused: `give the tool by its name, not a path: ${tool}` };
    if (!allowCommands) return { tool, refused: 'this host does not run commands (HOST_ALLOW_COMMANDS is off)' };
    const scope = scopes.find((s) => s.name === tool);
    if (!scope) return { tool, refused: `${tool} is not among the agent's allowed tools` };
    const refusal = commandRefusal(scope, argv.slice(1));
    if (refusal) return { tool, refused: refusal };
    const outcome = await runProgram(tool, argv.slice(1), signal);
    return { tool, ok: outcome.ok, output: tail(outcome.output), exitCode: outcome.exitCode, error: outcome.error };
  };
}
