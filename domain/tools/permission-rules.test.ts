import { scopeExcess, trimScope } from './permission-rules';

const scope = (allowedCommands: string[] = [], blockedCommands: string[] = []) => ({ allowedCommands, blockedCommands });

describe('scopeExcess (a subordinate within its supervisor)', () => {
  it.each([
    ['everything under everything', scope(), scope()],
    ['a list under everything', scope(['status']), scope()],
    ['a narrower list', scope(['remote add', 'log']), scope(['remote', 'log', 'status'])],
    ['the supervisor’s blocks repeated', scope([], ['push']), scope([], ['push'])],
    ['a broader block', scope([], ['remote']), scope([], ['remote add'])],
    ['a list that never reaches the blocked command', scope(['status']), scope([], ['push'])],
    ['an allowed entry outside the supervisor’s list but blocked anyway', scope(['status', 'push'], ['push']), scope(['status'])],
  ])('accepts %s', (_what, sub, sup) => {
    expect(scopeExcess('git', sub, sup)).toBeUndefined();
  });

  it.each([
    ['every command under a list', scope(), scope(['status']), 'allowedCommands', undefined],
    ['an entry outside the list', scope(['status', 'push']), scope(['status']), 'allowedCommands', 'push'],
    ['a broader entry than the supervisor’s', scope(['remote']), scope(['remote add']), 'allowedCommands', 'remote'],
    ['a missing block', scope(), scope([], ['push']), 'blockedCommands', 'push'],
    ['a narrower block', scope([], ['remote add']), scope([], ['remote']), 'blockedCommands', 'remote'],
    ['an allowed entry reaching into a block', scope(['remote']), scope([], ['remote add']), 'blockedCommands', 'remote add'],
    ['an allowed entry inside a block', scope(['remote add']), scope([], ['remote']), 'blockedCommands', 'remote'],
  ])('refuses %s, naming the field and the command', (_what, sub, sup, field, command) => {
    const excess = scopeExcess('git', sub, sup);
    expect(excess).toMatchObject({ field });
    expect(excess!.command).toBe(command);
    expect(excess!.message).toContain('git');
  });
});

describe('trimScope', () => {
  it('keeps what both allow and adds the supervisor’s blocks', () => {
    expect(trimScope(scope(['remote', 'log', 'push']), scope(['remote add', 'log']))).toEqual(scope(['remote add', 'log']));
    expect(trimScope(scope(), scope(['status']))).toEqual(scope(['status']));
    expect(trimScope(scope(['status'], ['x']), scope([], ['push', 'x y']))).toEqual(scope(['status'], ['x', 'push']));
  });

  it('takes the tool away when no allowed command is left', () => {
    expect(trimScope(scope(['push']), scope(['status']))).toBeUndefined();
  });

  it('always leaves a scope within the supervisor’s', () => {
    const cases = [scope(), scope(['a']), scope(['a b']), scope([], ['a']), scope(['a', 'b c'], ['b']), scope([], ['a b'])];
    for (const sub of cases) {
      for (const sup of cases) {
        const trimmed = trimScope(sub, sup);
        if (trimmed) expect(scopeExcess('t', trimmed, sup)).toBeUndefined();
      }
    }
  });
});
