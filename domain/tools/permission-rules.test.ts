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

describe('scopeExcess and trimScope with a profile (git)', () => {
  it.each([
    ['an option the supervisor names', scope(['-C', 'status']), scope(['-C'])],
    ['a narrower option', scope(['-c user.name=bot']), scope(['-c'])],
    ['an alias the supervisor names', scope(['zz']), scope(['zz', 'status'])],
    ['a subcommand the supervisor reaches', scope(['submodule foreach git status']), scope(['submodule foreach'])],
    ['a command under another of its names', scope(['add']), scope(['stage'])],
  ])('accepts %s', (_what, sub, sup) => {
    expect(scopeExcess('git', sub, sup)).toBeUndefined();
  });

  it.each([
    ['an option the supervisor does not name', scope(['-C']), scope(), 'allowedCommands', '-C'],
    ['a broader option', scope(['-c']), scope(['-c user.name=bot']), 'allowedCommands', '-c'],
    ['an alias under a supervisor without a list', scope(['zz']), scope(), 'allowedCommands', 'zz'],
    [
      'a subcommand the supervisor does not reach',
      scope(['submodule foreach']),
      scope(['submodule']),
      'allowedCommands',
      'submodule foreach',
    ],
    ['a synonym of a blocked command', scope(['stage']), scope([], ['add']), 'blockedCommands', 'add'],
  ])('refuses %s', (_what, sub, sup, field, command) => {
    expect(scopeExcess('git', sub, sup)).toMatchObject({ field, command });
  });

  it('trims options, unnamed subcommands and synonyms to the supervisor’s', () => {
    expect(trimScope('git', scope(['-c', '-C', 'status']), scope(['-c user.name=bot']))).toEqual(scope(['-c user.name=bot', 'status']));
    expect(trimScope('git', scope(['-C']), scope(['status']))).toEqual(scope(['status']));
    expect(trimScope('git', scope(['zz', 'status']), scope())).toEqual(scope(['status']));
    expect(trimScope('git', scope(['zz']), scope())).toBeUndefined();
    expect(trimScope('git', scope(['stage x']), scope(['add']))).toEqual(scope(['add x']));
    // Unchanged when already within: the order of the entries is kept.
    expect(trimScope('git', scope(['-C', 'status']), scope(['status', '-C']))).toEqual(scope(['-C', 'status']));
    // A tool without a profile: entries starting with `-` are commands as before.
    expect(trimScope('python3', scope(['-m pytest']), scope(['-m']))).toEqual(scope(['-m pytest']));
  });
});

describe('trimScope', () => {
  it('keeps what both allow and adds the supervisor’s blocks', () => {
    expect(trimScope('git', scope(['remote', 'log', 'push']), scope(['remote add', 'log']))).toEqual(scope(['remote add', 'log']));
    expect(trimScope('git', scope(), scope(['status']))).toEqual(scope(['status']));
    expect(trimScope('git', scope(['status'], ['x']), scope([], ['push', 'x y']))).toEqual(scope(['status'], ['x', 'push']));
  });

  it('takes the tool away when no allowed command is left', () => {
    expect(trimScope('git', scope(['push']), scope(['status']))).toBeUndefined();
  });

  it('always leaves a scope within the supervisor’s', () => {
    const cases = [
      scope(),
      scope(['a']),
      scope(['a b']),
      scope([], ['a']),
      scope(['a', 'b c'], ['b']),
      scope([], ['a b']),
      // git: option entries, aliases, subcommands that must be named, synonyms.
      scope(['-C']),
      scope(['-c user.name=x', 'status']),
      scope(['-c']),
      scope(['zz', 'status']),
      scope(['submodule']),
      scope(['submodule foreach']),
      scope(['stage']),
      scope([], ['add']),
      scope(['add x'], ['stage']),
      scope(['-C', 'zz']),
    ];
    for (const sub of cases) {
      for (const sup of cases) {
        for (const tool of ['t', 'git']) {
          const trimmed = trimScope(tool, sub, sup);
          if (trimmed) expect(scopeExcess(tool, trimmed, sup)).toBeUndefined();
        }
      }
    }
  });
});
