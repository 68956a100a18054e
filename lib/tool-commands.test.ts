import { commandRefusal, covers, splitCommandLine } from './tool-commands';

describe('covers', () => {
  it('matches whole words from the start', () => {
    expect(covers(['remote'], ['remote', 'add', 'x'])).toBe(true);
    expect(covers(['remote', 'add'], ['remote', '-v'])).toBe(false);
    expect(covers(['rem'], ['remote'])).toBe(false);
    expect(covers([], ['anything'])).toBe(true);
    expect(covers(['status'], [])).toBe(false);
  });
});

describe('commandRefusal', () => {
  const git = (allowedCommands: string[], blockedCommands: string[] = []) => ({ name: 'git', allowedCommands, blockedCommands });

  it('allows every command without an allowed list, except the blocked ones', () => {
    expect(commandRefusal(git([]), ['status'])).toBeUndefined();
    expect(commandRefusal(git([]), [])).toBeUndefined();
    expect(commandRefusal(git([], ['push']), ['push', 'origin'])).toBe('"git push origin" is blocked for this agent (blocked command "push")');
  });

  it('allows only what the allowed list covers, and a block wins over it', () => {
    expect(commandRefusal(git(['remote']), ['remote', '-v'])).toBeUndefined();
    expect(commandRefusal(git(['remote'], ['remote add']), ['remote', 'add', 'o'])).toMatch(/blocked/);
    expect(commandRefusal(git(['status', 'log']), ['push'])).toBe('"git push" is not among the agent\'s allowed commands of git ("status", "log")');
    // A call of the tool as a whole is no command of an allowed list.
    expect(commandRefusal(git(['status']), [])).toMatch(/not among/);
  });
});

describe('splitCommandLine', () => {
  it('splits on blanks and keeps quoted text as one argument, with no expansion', () => {
    expect(splitCommandLine('git  commit -m "a \\"b\\" c" \'$HOME; rm\'')).toEqual(['git', 'commit', '-m', 'a "b" c', '$HOME; rm']);
    expect(splitCommandLine('echo a\\ b ; ls')).toEqual(['echo', 'a b', ';', 'ls']);
    expect(splitCommandLine('  ')).toEqual([]);
    expect(splitCommandLine('x""')).toEqual(['x']);
    expect(splitCommandLine('"" y')).toEqual(['', 'y']);
  });

  it('answers undefined for an unterminated quote', () => {
    expect(splitCommandLine('echo "abc')).toBeUndefined();
    expect(splitCommandLine("echo 'abc")).toBeUndefined();
  });
});
