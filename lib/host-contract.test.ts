/**
 * The host contract's readers: what a client keeps from a host's messages and answers, and what
 * it drops. (That the reference host speaks this contract is checked in host/agent-host.test.ts.)
 */
import {
  allowedToolScopes,
  HOST_CONTRACT,
  HOST_TOOLS,
  hostToolCall,
  isHostContractTool,
  parseHostMessage,
  parsePromptResult,
} from './host-contract';

const E = 'exec-1';

describe('parseHostMessage', () => {
  it.each([
    ['output', { executionId: E, type: 'output', text: 'chunk' }],
    ['todo', { executionId: E, type: 'todo', todos: [{ id: 'plan', content: 'Plan', status: 'in_progress' }] }],
    ['an empty todo list', { executionId: E, type: 'todo', todos: [] }],
    ['tool_call', { executionId: E, type: 'tool_call', toolCallId: 'c1', name: 'shell', arguments: { command: 'ls' } }],
    ['tool_result', { executionId: E, type: 'tool_result', toolCallId: 'c1', name: 'shell', result: { exitCode: 0 } }],
    ['tool_result without a result', { executionId: E, type: 'tool_result', toolCallId: 'c1', name: 'shell' }],
    ['file_change', { executionId: E, type: 'file_change', path: 'a.md', change: 'deleted' }],
  ])('reads %s as it was sent', (_what, data) => {
    expect(parseHostMessage(data)).toEqual(data);
  });

  it('keeps the fields of the contract and drops the others', () => {
    expect(parseHostMessage({ executionId: E, type: 'output', text: 'x', level: 'debug', extra: 1 })).toEqual({
      executionId: E,
      type: 'output',
      text: 'x',
    });
    expect(
      parseHostMessage({ executionId: E, type: 'todo', todos: [{ id: '1', content: 'c', status: 'pending', priority: 'high' }] }),
    ).toEqual({
      executionId: E,
      type: 'todo',
      todos: [{ id: '1', content: 'c', status: 'pending' }],
    });
  });

  it.each([
    ['an unknown type', { executionId: E, type: 'thinking', text: 'hm' }],
    ['no type', { executionId: E, text: 'hm' }],
    ['no executionId', { type: 'output', text: 'x' }],
    ['a numeric executionId', { executionId: 1, type: 'output', text: 'x' }],
    ['output without text', { executionId: E, type: 'output' }],
    ['todos that are not a list', { executionId: E, type: 'todo', todos: 'plan' }],
    ['a todo with an unknown status', { executionId: E, type: 'todo', todos: [{ id: '1', content: 'c', status: 'blocked' }] }],
    ['tool_call arguments that are not an object', { executionId: E, type: 'tool_call', toolCallId: 'c', name: 'n', arguments: 'ls' }],
    ['an unknown file change', { executionId: E, type: 'file_change', path: 'a', change: 'renamed' }],
    ['null', null],
    ['a string', 'output'],
    ['an array', [{ executionId: E, type: 'output', text: 'x' }]],
  ])('answers undefined, without throwing, for %s', (_what, data) => {
    expect(parseHostMessage(data)).toBeUndefined();
  });
});

describe('parsePromptResult', () => {
  it('reads a full answer', () => {
    expect(parsePromptResult({ success: true, output: 'Done', tokensUsed: 4, data: { name: 'x' } })).toEqual({
      success: true,
      output: 'Done',
      tokensUsed: 4,
      data: { name: 'x' },
    });
    expect(parsePromptResult({ success: false, output: '' })).toMatchObject({ success: false, output: '' });
  });

  it('answers {} for no structured content at all', () => {
    for (const content of [undefined, null, 'Done', [1, 2]]) expect(parsePromptResult(content)).toEqual({});
  });

  it('keeps each field only when it has the contract type, so one bad field does not lose the others', () => {
    const read = parsePromptResult({ success: 'yes', output: 42, tokensUsed: 12, data: 'anything' });
    expect(read.success).toBeUndefined();
    expect(read.output).toBeUndefined();
    expect(read.tokensUsed).toBe(12);
    expect(read.data).toBe('anything');
    for (const tokensUsed of [-1, 1.5, '12'])
      expect(parsePromptResult({ success: true, output: 'x', tokensUsed }).tokensUsed).toBeUndefined();
  });
});

describe('the contract table', () => {
  it('describes every host tool, arguments and result', () => {
    expect(Object.keys(HOST_CONTRACT)).toEqual([...HOST_TOOLS]);
    const provision = { agentId: 'a', name: 'n', role: 'WORKER', capabilities: ['x'] };
    expect(HOST_CONTRACT.provision_agent.args.parse(provision)).toEqual(provision);
    expect(HOST_CONTRACT.provision_agent.args.safeParse({ agentId: 'a', name: 'n', role: 'WORKER' }).success).toBe(false);
    expect(HOST_CONTRACT.check_tool.result.safeParse({ installed: true, version: '1.2' }).success).toBe(true);
    expect(HOST_CONTRACT.install_tool.result.safeParse({ installed: true }).success).toBe(false);
  });

  it('reserves every tool of the contract, check_tool included, in any letter case, and nothing else', () => {
    expect(HOST_TOOLS).toHaveLength(7);
    for (const name of HOST_TOOLS) {
      expect(isHostContractTool(name)).toBe(true);
      expect(isHostContractTool(name.toUpperCase())).toBe(true);
    }
    expect(isHostContractTool('Check_Tool')).toBe(true);
    for (const name of ['git', 'check_tools', 'check-tool', 'install', 'echo']) expect(isHostContractTool(name)).toBe(false);
  });

  it('builds a tools/call request whose arguments the compiler checks against the contract', () => {
    expect(hostToolCall('activate_agent', { agentId: 'a' })).toEqual({ name: 'activate_agent', arguments: { agentId: 'a' } });
    // @ts-expect-error: provision_agent needs role and capabilities (npm run typecheck fails without this line's error)
    hostToolCall('provision_agent', { agentId: 'a', name: 'n' });
  });
});

describe('allowedTools', () => {
  const args = { executionId: E, agentId: 'a', agentName: 'n', prompt: 'p' };

  it('carries each tool with its allowed and blocked commands', () => {
    const allowedTools = [{ name: 'git', allowedCommands: ['status', 'log'], blockedCommands: ['push'] }];
    expect(HOST_CONTRACT.execute_prompt.args.parse({ ...args, allowedTools }).allowedTools).toEqual(allowedTools);
  });

  it('still reads a list of bare names, each allowing every command of its tool', () => {
    const parsed = HOST_CONTRACT.execute_prompt.args.parse({ ...args, allowedTools: ['git', { name: 'docker', blockedCommands: ['rm'] }] });
    expect(allowedToolScopes(parsed.allowedTools)).toEqual([
      { name: 'git', allowedCommands: [], blockedCommands: [] },
      { name: 'docker', allowedCommands: [], blockedCommands: ['rm'] },
    ]);
    expect(allowedToolScopes(undefined)).toEqual([]);
  });

  it('refuses an entry without a name', () => {
    expect(HOST_CONTRACT.execute_prompt.args.safeParse({ ...args, allowedTools: [{ allowedCommands: [] }] }).success).toBe(false);
  });
});
