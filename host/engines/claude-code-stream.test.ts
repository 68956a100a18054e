/**
 * The stream mapper on lines the real Claude Code CLI (2.1.332) printed, recorded by
 * test/llm/claude-code-cli.llm.test.ts (`CLAUDE_CODE_RECORD=1`) into test/fixtures/claude-code/:
 * a working run (task tools, a Write, denied and allowed Bash commands, cached tokens) and two
 * API errors (a 500 the CLI retried, a 404 it did not), all against the Messages API stand-in;
 * and a run against llama.cpp's own /v1/messages with SmolLM2-135M (CLAUDE_CODE_LLM_URL, output
 * capped at 256 tokens), whose server was killed in its third turn. No CLI runs here.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { HostEvent } from '../../lib/host-contract';
import { cliEnvironment } from './claude-code-cli';
import { permissionRules } from './claude-code-permissions';
import { ClaudeStreamMapper, resultError, tokensOf, type MappedLine } from './claude-code-stream';

const FIXTURES = path.join(__dirname, '..', '..', 'test', 'fixtures', 'claude-code');

/** The fixture's lines through a mapper for the workspace the CLI ran in (its init line's cwd). */
function replay(name: string): { mapper: ClaudeStreamMapper; mapped: MappedLine[]; events: HostEvent[] } {
  const lines = readFileSync(path.join(FIXTURES, `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean);
  const workspace = (JSON.parse(lines[0]!) as { cwd: string }).cwd;
  const mapper = new ClaudeStreamMapper({ workspace, existedBefore: () => false });
  const mapped = lines.map((line) => mapper.line(line));
  return { mapper, mapped, events: mapped.flatMap((m) => m.events) };
}

describe('the claude-code stream mapper on what the real CLI printed', () => {
  it('maps TaskCreate and TaskUpdate to todo events holding the whole plan, not tool calls', () => {
    const { events } = replay('work');
    const todos = events.flatMap((event) => (event.type === 'todo' ? [event.todos] : []));
    expect(todos).toEqual([
      [{ id: '1', content: 'Write hello.txt', status: 'pending' }],
      [
        { id: '1', content: 'Write hello.txt', status: 'pending' },
        { id: '2', content: 'Try to push', status: 'pending' },
      ],
      [
        { id: '1', content: 'Write hello.txt', status: 'in_progress' },
        { id: '2', content: 'Try to push', status: 'pending' },
      ],
      [
        { id: '1', content: 'Write hello.txt', status: 'completed' },
        { id: '2', content: 'Try to push', status: 'pending' },
      ],
      [
        { id: '1', content: 'Write hello.txt', status: 'completed' },
        { id: '2', content: 'Try to push', status: 'completed' },
      ],
    ]);
    const named = events.flatMap((event) => (event.type === 'tool_call' || event.type === 'tool_result' ? [event.name] : []));
    expect(named).not.toContain('TaskCreate');
    expect(named).not.toContain('TaskUpdate');
    expect(events).toContainEqual({ type: 'file_change', path: 'hello.txt', change: 'created' });
    // A denied command is a tool_result with the CLI's words as its error.
    expect(events).toContainEqual({
      type: 'tool_result',
      toolCallId: 'toolu_push_nopager',
      name: 'Bash',
      result: {
        output: 'Permission to use Bash with command git --no-pager push origin HEAD has been denied.',
        error: 'Permission to use Bash with command git --no-pager push origin HEAD has been denied.',
      },
    });
    expect(events.filter((event) => event.type === 'output').map((event) => event.type === 'output' && event.text)).toEqual([
      'I will plan the work first.\n',
      'Done: hello.txt is written; pushing is not allowed here.\n',
    ]);
  });

  it('counts cached input tokens: the result’s input, output, cache read and cache creation tokens', () => {
    const { mapper } = replay('work');
    expect(mapper.result!.usage).toMatchObject({
      input_tokens: 210,
      output_tokens: 65,
      cache_read_input_tokens: 7000,
      cache_creation_input_tokens: 500,
    });
    expect(tokensOf(mapper.result!)).toBe(210 + 65 + 7000 + 500);
  });

  it('shows the CLI’s api_retry lines on a 5xx as progress, and its synthetic error message is not output', () => {
    const { mapper, mapped, events } = replay('api-error-500');
    expect(mapped.map((m) => m.progress).filter(Boolean)).toEqual([
      'Claude Code started (stand-in-model)',
      'API error 500 (server_error): retry 1 of 2 in 0.6 s',
      'API error 500 (server_error): retry 2 of 2 in 1.2 s',
    ]);
    expect(events).toEqual([]);
    expect(mapper.texts).toEqual([]);
    expect(mapper.apiErrors).toEqual([expect.stringMatching(/^API Error: 500 Internal server error\. This is a server-side issue/)]);
    expect(mapper.result).toMatchObject({ is_error: true, subtype: 'success' });
    expect(resultError(mapper.result!)).toMatch(/^Claude Code: API Error: 500 Internal server error\./);
  });

  it('fails on a 4xx the CLI does not retry with its words, and sends no output', () => {
    const { mapper, mapped, events } = replay('api-error-404');
    expect(mapped.map((m) => m.progress).filter(Boolean)).toEqual(['Claude Code started (stand-in-model)']);
    expect(events).toEqual([]);
    expect(mapper.apiErrors).toEqual([expect.stringContaining("There's an issue with the selected model (stand-in-model)")]);
    expect(resultError(mapper.result!)).toBe(`Claude Code: ${mapper.apiErrors[0]}`);
  });
});

describe('the claude-code stream mapper on a real model (llama.cpp) whose server went away', () => {
  it('sends the model’s text as output, shows the retry of a lost connection, keeps the connection error out of the output, and counts llama.cpp’s cache reads', () => {
    const { mapper, mapped, events } = replay('llama-cpp-server-killed');
    // Two capped answers (the CLI asked the model to resume after each), then the server was gone.
    expect(events.map((event) => event.type)).toEqual(['output', 'output']);
    expect(mapper.texts[0]).toMatch(/^Claude\.md-specific:/);
    expect(mapped.map((m) => m.progress).filter(Boolean)).toEqual([
      'Claude Code started (smollm2)',
      'API error (unknown): retry 1 of 1 in 0.6 s',
    ]);
    expect(mapper.apiErrors).toEqual(['API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)']);
    expect(resultError(mapper.result!)).toBe(
      'Claude Code: API Error: Connection refused — a firewall or proxy may be blocking it (ECONNREFUSED)',
    );
    expect(tokensOf(mapper.result!)).toBe(4187 + 8949 + 512);
  });
});

describe('the claude-code CLI’s rules and environment', () => {
  it('names only tools this CLI has: the task tools, no TodoWrite or MultiEdit', () => {
    const init = JSON.parse(readFileSync(path.join(FIXTURES, 'work.jsonl'), 'utf8').split('\n')[0]!) as { tools: string[] };
    const { allowed } = permissionRules([], true) as { allowed: string[] };
    const named = allowed.map((rule) => rule.replace(/\(.*$/, ''));
    expect(named.filter((tool) => !init.tools.includes(tool))).toEqual([]);
    expect(named).toEqual(expect.arrayContaining(['TaskCreate', 'TaskUpdate']));
  });

  it('gives the CLI its own HOME and turns its telemetry, error reports and other traffic off unless the operator set them', () => {
    const env = cliEnvironment('/ws/agent-1', { PATH: '/usr/bin', HOME: '/root', DISABLE_TELEMETRY: '0' }, '/tmp/mcp-fleet-claude-home-x');
    expect(env).toMatchObject({
      HOME: '/tmp/mcp-fleet-claude-home-x',
      PWD: '/ws/agent-1',
      DISABLE_TELEMETRY: '0',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    });
  });
});
