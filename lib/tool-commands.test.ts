import { splitCommandLine } from './command-line';
import { commandForms, commandRefusal, covers, readCommand } from './tool-commands';

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
    expect(commandRefusal(git([], ['push']), ['push', 'origin'])).toBe(
      '"git push origin" is blocked for this agent (blocked command "push")',
    );
  });

  it('allows only what the allowed list covers, and a block wins over it', () => {
    expect(commandRefusal(git(['remote']), ['remote', '-v'])).toBeUndefined();
    expect(commandRefusal(git(['remote'], ['remote add']), ['remote', 'add', 'o'])).toMatch(/blocked/);
    expect(commandRefusal(git(['status', 'log']), ['push'])).toBe(
      '"git push" is not among the agent\'s allowed commands of git ("status", "log")',
    );
    // A call of the tool as a whole is no command of an allowed list.
    expect(commandRefusal(git(['status']), [])).toMatch(/not among/);
  });
});

/** `line` (after the program) read by its profile: the command, and the entries the grant must name. */
function read(program: string, line: string): { command: string[]; named: string[] } | { refused: string } {
  const reading = readCommand(program, splitCommandLine(line)!);
  return 'refused' in reading
    ? reading
    : {
        command: reading.command,
        named: reading.needs.map((n) => [n.entry, ...n.key.slice(n.kind === 'option' ? 1 : n.key.length)].join(' ')),
      };
}

describe('readCommand', () => {
  it.each<[string, string, ReturnType<typeof read>]>([
    // git: the command is the subcommand after the global options.
    ['git', 'status -s', { command: ['status', '-s'], named: [] }],
    ['git', '--no-pager -P --literal-pathspecs log -1', { command: ['log', '-1'], named: [] }],
    [
      'git',
      '-c a.b=c config --global alias.zz "!touch x"',
      { command: ['config', '--global', 'alias.zz', '!touch x'], named: ['-c a.b=c'] },
    ],
    [
      'git',
      '-C . ls-remote --upload-pack="touch x" .',
      { command: ['ls-remote', '--upload-pack=touch x', '.'], named: ['-C .', '--upload-pack touch x'] },
    ],
    ['git', '--git-dir=.git --work-tree . status', { command: ['status'], named: ['--git-dir .git', '--work-tree .'] }],
    ['git', '--git-dir .git status', { command: ['status'], named: ['--git-dir .git'] }],
    [
      'git',
      '--config-env=core.pager=PAGER --namespace n --super-prefix=p --attr-source=HEAD --bare log',
      { command: ['log'], named: ['--config-env core.pager=PAGER', '--namespace n', '--super-prefix p', '--attr-source HEAD', '--bare'] },
    ],
    ['git', '--exec-path', { command: [], named: [] }],
    ['git', '--exec-path=/tmp/x status', { command: ['status'], named: ['--exec-path /tmp/x'] }],
    ['git', '-p log', { command: ['log'], named: ['-p'] }],
    ['git', '--paginate log', { command: ['log'], named: ['-p'] }],
    // --version and --help are the commands version and help, the rest their arguments.
    ['git', '--version --build-options', { command: ['version', '--build-options'], named: [] }],
    ['git', '-C x --help push', { command: ['help', 'push'], named: ['-C x'] }],
    // Aliases and external git-NAME programs, internal helpers, programs given to a command.
    ['git', 'zz', { command: ['zz'], named: ['zz'] }],
    ['git', 'bisect--helper --bisect-run x', { command: ['bisect--helper', '--bisect-run', 'x'], named: ['bisect--helper'] }],
    ['git', 'submodule foreach "touch x"', { command: ['submodule', 'foreach', 'touch x'], named: ['submodule foreach'] }],
    ['git', 'submodule update --init', { command: ['submodule', 'update', '--init'], named: [] }],
    ['git', 'bisect run make', { command: ['bisect', 'run', 'make'], named: ['bisect run'] }],
    ['git', 'for-each-repo --config=x ls-remote', { command: ['for-each-repo', '--config=x', 'ls-remote'], named: ['for-each-repo'] }],
    ['git', 'difftool -x touch', { command: ['difftool', '-x', 'touch'], named: ['difftool'] }],
    // Options of a command that run a program or write a file, however they are spelled.
    ['git', 'ls-remote --upload-pack x .', { command: ['ls-remote', '--upload-pack', 'x', '.'], named: ['--upload-pack x'] }],
    ['git', 'ls-remote --upl=x .', { command: ['ls-remote', '--upl=x', '.'], named: ['--upload-pack x'] }],
    ['git', 'ls-remote -ux .', { command: ['ls-remote', '-ux', '.'], named: ['--upload-pack x'] }],
    ['git', 'ls-remote . -- --upload-pack=x', { command: ['ls-remote', '.', '--', '--upload-pack=x'], named: [] }],
    ['git', 'fetch -u origin', { command: ['fetch', '-u', 'origin'], named: [] }],
    ['git', 'fetch --upload-pack=x origin', { command: ['fetch', '--upload-pack=x', 'origin'], named: ['--upload-pack x'] }],
    [
      'git',
      'clone -c core.sshCommand=x --template=t u d',
      { command: ['clone', '-c', 'core.sshCommand=x', '--template=t', 'u', 'd'], named: ['--config core.sshCommand=x', '--template t'] },
    ],
    ['git', 'push --receive-pack=x origin', { command: ['push', '--receive-pack=x', 'origin'], named: ['--receive-pack x'] }],
    ['git', 'push --exec x origin', { command: ['push', '--exec', 'x', 'origin'], named: ['--receive-pack x'] }],
    [
      'git',
      'archive -o out.tar --remote=r HEAD',
      { command: ['archive', '-o', 'out.tar', '--remote=r', 'HEAD'], named: ['--output out.tar'] },
    ],
    ['git', 'rebase -ix "touch y" main', { command: ['rebase', '-ix', 'touch y', 'main'], named: ['--exec'] }],
    ['git', 'grep -Ovi x', { command: ['grep', '-Ovi', 'x'], named: ['--open-files-in-pager vi'] }],
    [
      'git',
      'log --output=.gitconfig --format=x',
      { command: ['log', '--output=.gitconfig', '--format=x'], named: ['--output .gitconfig'] },
    ],
    ['git', 'diff --ext-diff', { command: ['diff', '--ext-diff'], named: ['--ext-diff'] }],
    ['git', 'diff --no-ext-diff --output-indicator-new=+', { command: ['diff', '--no-ext-diff', '--output-indicator-new=+'], named: [] }],
    ['git', 'init-db --separate-git-dir=../x', { command: ['init-db', '--separate-git-dir=../x'], named: ['--separate-git-dir ../x'] }],
    // What cannot be read is refused: nobody could say which command runs.
    [
      'git',
      '--frob status',
      { refused: '--frob is not an option of git that mcp-fleet knows before the command, so it cannot tell which command would run' },
    ],
    ['git', '-Cdir status', { refused: expect.stringContaining('-Cdir is not an option of git') as string }],
    ['git', '--bare=1 status', { refused: expect.stringContaining('--bare=1 is not an option') as string }],
    ['git', '-C', { refused: '-C needs a value' }],
    // docker: global options before the subcommand only, short bundles, attached values.
    [
      'docker',
      '-H tcp://h:2375 --tls=false -Dl debug container run x',
      { command: ['container', 'run', 'x'], named: ['--host tcp://h:2375'] },
    ],
    ['docker', '--context=prod ps', { command: ['ps'], named: ['--context prod'] }],
    ['docker', '-cprod ps', { command: ['ps'], named: ['--context prod'] }],
    ['docker', '--config ./cfg run x', { command: ['run', 'x'], named: ['--config ./cfg'] }],
    ['docker', '-v', { command: ['version'], named: [] }],
    ['docker', '-X ps', { refused: expect.stringContaining('-X is not an option of docker') as string }],
    // kubectl and helm: global options anywhere, the harmless ones skipped before the subcommand.
    ['kubectl', '-n web delete pod x', { command: ['delete', 'pod', 'x'], named: [] }],
    [
      'kubectl',
      '--namespace=web -v=4 get pods --context prod',
      { command: ['get', 'pods', '--context', 'prod'], named: ['--context prod'] },
    ],
    ['kubectl', 'get pods -sx', { command: ['get', 'pods', '-sx'], named: ['--server x'] }],
    ['kubectl', 'get pods -ojson -lsvc=web', { command: ['get', 'pods', '-ojson', '-lsvc=web'], named: [] }],
    ['kubectl', 'get pods -As https://x', { command: ['get', 'pods', '-As', 'https://x'], named: ['--server'] }],
    ['kubectl', 'exec p -- kubectl --kubeconfig=x', { command: ['exec', 'p', '--', 'kubectl', '--kubeconfig=x'], named: [] }],
    [
      'helm',
      '--kube-context prod upgrade r c --post-renderer ./x',
      { command: ['upgrade', 'r', 'c', '--post-renderer', './x'], named: ['--kube-context prod', '--post-renderer ./x'] },
    ],
    ['helm', '-n x plugin install ./p', { command: ['plugin', 'install', './p'], named: ['plugin install'] }],
    // terraform: -chdir=DIR, -version, -help before the subcommand.
    ['terraform', '-chdir=infra apply', { command: ['apply'], named: ['-chdir infra'] }],
    ['terraform', '-version', { command: ['version'], named: [] }],
    // A program without a profile: every word is the command.
    ['jq', '-r .a', { command: ['-r', '.a'], named: [] }],
    ['constructor', '-x', { command: ['-x'], named: [] }],
  ])('%s %s', (program, line, expected) => {
    expect(read(program, line)).toEqual(expected);
  });

  it('gives a command under each of its names', () => {
    expect(commandForms('git', ['stage', 'x'])).toEqual([
      ['stage', 'x'],
      ['add', 'x'],
    ]);
    expect(commandForms('docker', ['container', 'rm', 'c'])).toEqual([
      ['container', 'rm', 'c'],
      ['rm', 'c'],
      ['container', 'remove', 'c'],
    ]);
    expect(commandForms('jq', ['stage'])).toEqual([['stage']]);
  });
});

describe('commandRefusal with a profile', () => {
  const git = (allowedCommands: string[], blockedCommands: string[] = []) => ({ name: 'git', allowedCommands, blockedCommands });
  const refusal = (scope: ReturnType<typeof git>, line: string) => commandRefusal(scope, splitCommandLine(line)!);
  const blocked = git([], ['config', 'ls-remote', 'push']);

  it('compares blocked commands to the subcommand, whatever global options come first', () => {
    expect(refusal(blocked, '-c a.b=c config --global alias.zz "!touch x"')).toBe(
      '"git -c a.b=c config --global alias.zz !touch x" is blocked for this agent (blocked command "config")',
    );
    expect(refusal(blocked, '-C . ls-remote --upload-pack="touch x" .')).toBe(
      '"git -C . ls-remote --upload-pack=touch x ." is blocked for this agent (blocked command "ls-remote")',
    );
    expect(refusal(blocked, '--no-pager push origin')).toMatch(/blocked command "push"/);
    expect(refusal(git([], ['add']), 'stage x')).toMatch(/blocked command "add"/);
    expect(refusal({ name: 'docker', allowedCommands: [], blockedCommands: ['run'] }, '-D container run x')).toMatch(
      /blocked command "run"/,
    );
    expect(refusal(blocked, '--no-pager status')).toBeUndefined();
  });

  it('refuses what changes what runs or where unless allowedCommands name it', () => {
    expect(refusal(blocked, 'zz')).toBe(
      '"git zz" is refused: zz is not one of git’s own commands: an alias or an external git-NAME program, which run what the configuration or the PATH says; the grant\'s allowedCommands must name it ("zz")',
    );
    expect(refusal(git([]), 'ls-remote --upload-pack="touch x" .')).toBe(
      '"git ls-remote --upload-pack=touch x ." is refused: --upload-pack of git ls-remote runs the program it is given in place of git-upload-pack; the grant\'s allowedCommands must name it ("--upload-pack")',
    );
    expect(refusal(git([]), '-C sub status')).toBe(
      '"git -C sub status" is refused: git\'s option -C runs git in another directory; the grant\'s allowedCommands must name it ("-C")',
    );
    expect(refusal(git([]), 'log --output=.gitconfig')).toMatch(/--output of git log writes to a file/);
    expect(refusal(git([]), 'submodule foreach x')).toMatch(/git submodule foreach runs a program it is given; .* \("submodule foreach"\)/);
    expect(refusal(git([]), '--frob status')).toMatch(/^"git --frob status" is refused: --frob is not an option of git/);
  });

  it('lets an option entry name an option (with or without its value) and a command entry reach a subcommand', () => {
    // An option entry is no command: with no command entry, every command is allowed.
    expect(refusal(git(['-C']), '-C sub push')).toBeUndefined();
    expect(refusal(git(['-C', 'status']), '-C sub push')).toMatch(/not among the agent's allowed commands of git \("status"\)/);
    expect(refusal(git(['-c user.name=bot']), '-c user.name=bot commit -m x')).toBeUndefined();
    expect(refusal(git(['-c user.name=bot']), '-c core.pager=x log')).toMatch(/must name it \("-c"\)/);
    expect(refusal(git(['--git-dir=.git']), '--git-dir .git status')).toBeUndefined();
    expect(refusal(git(['--upload-pack']), 'ls-remote -ux .')).toBeUndefined();
    expect(refusal(git(['zz']), 'zz')).toBeUndefined();
    expect(refusal(git(['submodule']), 'submodule foreach x')).toMatch(/must name it \("submodule foreach"\)/);
    expect(refusal(git(['submodule foreach']), 'submodule foreach x')).toBeUndefined();
    // An entry written as the option that stands for a command is that command.
    expect(refusal(git([], ['--version']), 'version')).toMatch(/blocked command "--version"/);
    expect(refusal(git([], ['version']), '--version')).toMatch(/blocked command "version"/);
    expect(refusal(git(['--version']), 'status')).toMatch(/not among the agent's allowed commands of git \("--version"\)/);
    // Blocks still win, and a tool without a profile reads entries starting with `-` as commands.
    expect(refusal(git(['-C'], ['push']), '-C sub push')).toMatch(/blocked/);
    expect(
      commandRefusal({ name: 'python3', allowedCommands: ['-m pytest'], blockedCommands: [] }, ['-m', 'pytest', '-q']),
    ).toBeUndefined();
    expect(commandRefusal({ name: 'python3', allowedCommands: ['-m pytest'], blockedCommands: [] }, ['-c', 'x'])).toMatch(/not among/);
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
