/**
 * The `openai` engine: an LLM agent over any OpenAI-compatible Chat Completions endpoint
 * (OpenAI, Ollama, vLLM, llama.cpp, LM Studio…). Each turn streams the model's text to the
 * client as it comes and collects its tool calls; the calls run (commands through the host's
 * runner, files inside the workspace) and their results go back to the model, until it answers
 * without calling a tool or the turn limit is reached. Settings come from the host's
 * environment (HOST_OPENAI_*); the API key goes in the Authorization header and nowhere else.
 */
import type { ExecutePromptResult } from '../../lib/host-contract';
import type { Engine, EngineOutcome, EngineRun, EngineSettings } from './engine';
import { EndpointError, requestTurn } from './openai-endpoint';
import { TextOutput } from './openai-output';
import { structuredOutput, type StructuredOutput } from './openai-schema';
import { StreamFormatError, type ModelToolCall } from './openai-stream';
import { toolCallWrittenAsText } from './openai-text-calls';
import { AgentTools, type ToolOutcome } from './openai-tools';

export const DEFAULT_MAX_TURNS = 20;
/** Local models may think for a while before their first token. */
export const DEFAULT_TIMEOUT_MS = 120_000;

export interface OpenAISettings {
  baseUrl: string;
  apiKey: string;
  model: string;
  maxTurns: number;
  /** How long the endpoint may stay silent before the run fails. */
  idleTimeoutMs: number;
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number | string {
  const raw = env[name]?.trim();
  if (!raw) return fallback;
  const value = Number(raw);
  return Number.isInteger(value) && value > 0 ? value : `${name} must be a positive whole number, not "${raw}"`;
}

/** The engine's settings from the host's environment, or why they cannot be used. */
export function readOpenAISettings(env: NodeJS.ProcessEnv): OpenAISettings | { problem: string } {
  const missing = ['HOST_OPENAI_BASE_URL', 'HOST_OPENAI_API_KEY', 'HOST_OPENAI_MODEL'].filter((name) => !env[name]?.trim());
  if (missing.length) return { problem: `the openai engine needs ${missing.join(', ')} (set in the host's environment)` };
  const baseUrl = env.HOST_OPENAI_BASE_URL!.trim();
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return { problem: `HOST_OPENAI_BASE_URL is not a URL: "${baseUrl}"` };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return { problem: `HOST_OPENAI_BASE_URL must be an http(s) URL, not "${baseUrl}"` };
  const maxTurns = positiveInteger(env, 'HOST_OPENAI_MAX_TURNS', DEFAULT_MAX_TURNS);
  if (typeof maxTurns === 'string') return { problem: maxTurns };
  const idleTimeoutMs = positiveInteger(env, 'HOST_OPENAI_TIMEOUT_MS', DEFAULT_TIMEOUT_MS);
  if (typeof idleTimeoutMs === 'string') return { problem: idleTimeoutMs };
  return { baseUrl, apiKey: env.HOST_OPENAI_API_KEY!.trim(), model: env.HOST_OPENAI_MODEL!.trim(), maxTurns, idleTimeoutMs };
}

/** `text` with the API key taken out: an endpoint or proxy may echo it in an error. */
export function redact(text: string, apiKey: string): string {
  return apiKey ? text.split(apiKey).join('[redacted]') : text;
}

function systemPrompt(run: EngineRun, tools: AgentTools): string {
  const names = tools.definitions.map((tool) => tool.function.name);
  return [
    `You are ${run.agentName}, an agent run by mcp-fleet. You work on your own, without asking questions: nobody answers them during a run.`,
    `Your workspace is the directory ${run.workspace}; it is kept between your runs. File paths you give are relative to it, and you cannot reach files outside it.`,
    `Your tools: ${names.join(', ')}.`,
    names.includes('run_command')
      ? 'run_command runs one program from the list in its description, without a shell; anything else is refused.'
      : 'You cannot run commands here: do the work with the file tools.',
    'Keep your todo list current with update_todos when the work has several steps.',
    ...(names.includes('delegate')
      ? [
          'You lead other agents: list_subordinates names them, and delegate hands one a prompt and waits for its answer. Hand them the work that fits them; delegate calls made in the same turn run at the same time.',
        ]
      : []),
    run.responseSchema
      ? 'When you are done, answer with only the JSON the response format asks for.'
      : 'When you are done, answer with a short report of what you did; that answer ends the run.',
  ].join('\n');
}

function userPrompt(run: EngineRun): string {
  if (!run.context || Object.keys(run.context).length === 0) return run.prompt;
  return `${run.prompt}\n\nContext (JSON):\n${JSON.stringify(run.context, null, 2)}`;
}

type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | {
      role: 'assistant';
      content: string | null;
      tool_calls?: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
    }
  | { role: 'tool'; tool_call_id: string; content: string };

function assistantMessage(text: string, calls: ModelToolCall[]): ChatMessage {
  return {
    role: 'assistant',
    content: text || null,
    ...(calls.length
      ? {
          tool_calls: calls.map((call) => ({
            id: call.id,
            type: 'function' as const,
            function: { name: call.name, arguments: call.arguments },
          })),
        }
      : {}),
  };
}

function stopReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('cancelled');
}

/** The model's final answer as the run's result, held to the responseSchema when there is one. */
function finalOutcome(
  answer: string,
  output: string,
  tokensUsed: number | undefined,
  structured: StructuredOutput | undefined,
): EngineOutcome {
  const result: ExecutePromptResult = { success: true, output, ...(tokensUsed !== undefined ? { tokensUsed } : {}) };
  if (!structured) return { ok: true, result };
  const checked = structured.check(answer);
  if (!checked.ok) return { ok: false, error: checked.reason };
  return { ok: true, result: { ...result, data: checked.data } };
}

async function converse(run: EngineRun, settings: OpenAISettings, allowCommands: boolean): Promise<EngineOutcome> {
  let structured: StructuredOutput | undefined;
  try {
    structured = run.responseSchema ? structuredOutput(run.responseSchema) : undefined;
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
  const tools = new AgentTools(run, allowCommands);
  const offered = new Set(tools.definitions.map((tool) => tool.function.name));
  const messages: ChatMessage[] = [
    { role: 'system', content: systemPrompt(run, tools) },
    { role: 'user', content: userPrompt(run) },
  ];
  let output = '';
  let tokensUsed: number | undefined;
  const text = new TextOutput(async (event) => {
    if (event.type === 'output') output += event.text;
    await run.emit(event);
  });
  try {
    for (let turn = 1; turn <= settings.maxTurns; turn++) {
      const body = {
        model: settings.model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
        ...(tools.definitions.length ? { tools: tools.definitions } : {}),
        ...(structured ? { response_format: structured.responseFormat } : {}),
      };
      const answer = await requestTurn(settings, body, turn, run.signal, {
        onText: (delta) => text.push(delta),
        // A reasoning model's thinking is not what it says: not output, but a sign of life.
        onThinking: () => run.progress(turn - 1, settings.maxTurns, `turn ${turn}: thinking`),
      });
      if (answer.usage) tokensUsed = (tokensUsed ?? 0) + answer.usage.totalTokens;
      // A call written as the whole answer's text runs as a call (see openai-text-calls.ts); its
      // text has already gone out as output, which is what the model said. Never with a
      // responseSchema: there the answer is JSON by design.
      const written =
        answer.toolCalls.length === 0 && !structured && !answer.refusal
          ? toolCallWrittenAsText(answer.text, offered, `call_${turn}_text`)
          : undefined;
      if (written) answer.toolCalls.push(written);
      // Some servers say `stop` with tool calls: the calls decide whether the conversation goes on.
      if (answer.toolCalls.length === 0) {
        await text.flush();
        if (answer.refusal) return { ok: false, error: `the model refused: ${answer.refusal}` };
        if (answer.finishReason === 'length')
          return { ok: false, error: "the model's answer was cut off at its length limit (finish_reason length)" };
        return finalOutcome(answer.text, output, tokensUsed, structured);
      }
      // What the model said before its calls ends on its own line, ahead of the calls' events.
      if (answer.text && !answer.text.endsWith('\n')) await text.push('\n');
      await text.flush();
      // A call written as text goes back as the call alone: the chat template writes it out again.
      messages.push(assistantMessage(written ? '' : answer.text, answer.toolCalls));
      const outcomes: Promise<ToolOutcome>[] = [];
      for (const call of answer.toolCalls) {
        if (run.signal.aborted) throw stopReason(run.signal);
        const outcome = tools.call(call);
        // A turn's delegations run together, each child working while the turn's other calls are made; the rest one after the other.
        if (tools.isDelegation(call)) outcome.catch(() => undefined);
        else await outcome;
        outcomes.push(outcome);
      }
      for (const [i, outcome] of (await Promise.all(outcomes)).entries()) {
        output += outcome.output;
        messages.push({ role: 'tool', tool_call_id: answer.toolCalls[i]!.id, content: outcome.content });
      }
      if (run.signal.aborted) throw stopReason(run.signal);
      await run.progress(turn, settings.maxTurns, `turn ${turn}: ${answer.toolCalls.map((call) => call.name).join(', ')}`);
    }
    return { ok: false, error: `the model did not finish within ${settings.maxTurns} turns (HOST_OPENAI_MAX_TURNS)` };
  } finally {
    text.dispose();
    await tools.close();
  }
}

export function createOpenAIEngine(settings: EngineSettings): Engine {
  return {
    name: 'openai',
    callsFleet: true,
    check: async () => {
      const read = readOpenAISettings(settings.env);
      return 'problem' in read ? read.problem : undefined;
    },
    run: async (run) => {
      const read = readOpenAISettings(settings.env);
      if ('problem' in read) return { ok: false, error: read.problem };
      try {
        return await converse(run, read, settings.allowCommands);
      } catch (error) {
        if (run.signal.aborted) throw stopReason(run.signal);
        if (error instanceof EndpointError || error instanceof StreamFormatError) {
          return { ok: false, error: redact(error.message, read.apiKey) };
        }
        throw new Error(redact(error instanceof Error ? error.message : String(error), read.apiKey));
      }
    },
  };
}
