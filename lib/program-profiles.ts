/**
 * How the command lines of some programs are read (lib/tool-commands.ts): which options come
 * before the subcommand and which of them take a value, which options change what runs or
 * where (a grant must name them), which subcommands are the program's own and which run a
 * program they are given. Only programs whose commands are a subcommand after global options
 * have a profile; for the others the command is every word after the program's name.
 *
 * docs/tools.md (Command scopes) lists these tables for people: change both together.
 */

/** An option, by its spellings; the first is the one a grant names and a refusal shows. */
export interface OptionSpec {
  names: readonly string[];
  /**
   * `none`: a flag (`--bare`); `required`: the next word, or attached (`--git-dir=x`, and `-nx`
   * for programs with short-option bundles); `attached`: only attached (`--exec-path=x`,
   * `-chdir=x`, `-O<pager>`; a global option of this kind is read only with its value).
   */
  value: 'none' | 'required' | 'attached';
  /** What it changes, when a grant must name it: "runs git in another directory". Absent: harmless. */
  named?: string;
}

export interface ProgramProfile {
  /**
   * How option words are written. `exact`: each option is its own word, `--long=value`
   * allowed for options with a value (git's own parser, terraform). `pflag`: also `-abc`
   * bundles of short flags and `-nvalue` (docker, kubectl, helm).
   */
  style: 'exact' | 'pflag';
  globalOptions: readonly OptionSpec[];
  /** Option words that stand for a subcommand: `git --version` runs `git version`. */
  optionCommands?: Readonly<Record<string, string>>;
  /**
   * Global options may also come after the subcommand (cobra programs): the named ones are
   * looked for among every word before `--`, not only before the subcommand.
   */
  globalsAnywhere?: boolean;
  /** The program's own subcommands; any other first word is an alias or a plugin, which runs what its configuration says. */
  ownCommands?: ReadonlySet<string>;
  /** What an unknown subcommand is, for a refusal: "an alias, or an external git-NAME program". */
  otherCommand?: string;
  /** Subcommands (as word prefixes) that run a program they are given; a grant must name them. */
  programCommands?: readonly (readonly string[])[];
  /** Options of a subcommand (its first word) that run a program or write a file they are given. */
  commandOptions?: Readonly<Record<string, readonly OptionSpec[]>>;
  /** Long options of subcommands may be abbreviated (git's parse-options: `--upl` is `--upload-pack`). */
  abbreviations?: boolean;
  /**
   * Short options of subcommands that take the rest of their word as their value: in a bundle
   * nothing after one of them is an option (kubectl's `-ojson` is `-o json`, no `-s`). Without
   * it, any letter of a bundle counts, a refusal too many rather than one too few.
   */
  valueLetters?: string;
  /** Groups of commands that are one command under several names: a block of one blocks the others. */
  synonyms?: readonly (readonly (readonly string[])[])[];
}

const words = (text: string) => text.split(' ');

/**
 * git's global options (git.c handle_options, git 2.39 to 2.47): exact words, `--long=value`
 * or the value as the next word; no bundles, no abbreviations. Any other option before the
 * subcommand is refused: git would refuse it too, or it is newer than this table.
 */
const GIT_GLOBAL_OPTIONS: OptionSpec[] = [
  { names: ['-C'], value: 'required', named: 'runs git in another directory' },
  { names: ['-c'], value: 'required', named: 'sets configuration, which can name programs git runs' },
  { names: ['--config-env'], value: 'required', named: 'sets configuration, which can name programs git runs' },
  // `--exec-path` alone prints where git's programs are; `--exec-path=x` takes them from x.
  { names: ['--exec-path'], value: 'none' },
  { names: ['--exec-path'], value: 'attached', named: "takes git's own programs from another directory" },
  { names: ['--git-dir'], value: 'required', named: 'uses another repository' },
  { names: ['--work-tree'], value: 'required', named: 'uses another working tree' },
  { names: ['--namespace'], value: 'required', named: 'works in another namespace of the repository' },
  { names: ['--super-prefix'], value: 'required', named: 'runs git as if in another directory' },
  { names: ['--attr-source'], value: 'required', named: 'reads attributes, which choose diff and filter programs, from a tree' },
  { names: ['--bare'], value: 'none', named: 'uses the current directory as the repository' },
  { names: ['-p', '--paginate'], value: 'none', named: 'starts a pager, a program the configuration chooses' },
  { names: ['-P', '--no-pager'], value: 'none' },
  ...[
    '--no-replace-objects',
    '--no-lazy-fetch',
    '--no-optional-locks',
    '--no-advice',
    '--literal-pathspecs',
    '--glob-pathspecs',
    '--noglob-pathspecs',
    '--icase-pathspecs',
    '--html-path',
    '--man-path',
    '--info-path',
  ].map((name): OptionSpec => ({ names: [name], value: 'none' })),
];

/**
 * The commands git 2.39 runs itself (`git --list-cmds=main`, less its internal `x--y` helpers,
 * which are refused like aliases). A word that is not one of them is an alias or an external
 * `git-NAME` program: both run what the configuration or the PATH says, so a grant must name
 * them. A command newer than git 2.39 is named the same way.
 */
const GIT_COMMANDS = new Set(
  words(
    'add am annotate apply archive bisect blame branch bugreport bundle cat-file check-attr check-ignore check-mailmap check-ref-format checkout checkout-index cherry cherry-pick ' +
      'clean clone column commit commit-graph commit-tree config count-objects credential credential-cache credential-store daemon describe diagnose diff diff-files diff-index ' +
      'diff-tree difftool fast-export fast-import fetch fetch-pack filter-branch fmt-merge-msg for-each-ref for-each-repo format-patch fsck fsck-objects gc get-tar-commit-id grep ' +
      'hash-object help hook http-backend http-fetch http-push imap-send index-pack init init-db instaweb interpret-trailers log ls-files ls-remote ls-tree mailinfo mailsplit ' +
      'maintenance merge merge-base merge-file merge-index merge-octopus merge-one-file merge-ours merge-recursive merge-recursive-ours merge-recursive-theirs merge-resolve ' +
      'merge-subtree merge-tree mergetool mktag mktree multi-pack-index mv name-rev notes pack-objects pack-redundant pack-refs patch-id pickaxe prune prune-packed pull push ' +
      'quiltimport range-diff read-tree rebase receive-pack reflog remote remote-ext remote-fd remote-ftp remote-ftps remote-http remote-https repack replace request-pull rerere ' +
      'reset restore rev-list rev-parse revert rm send-pack shell shortlog show show-branch show-index show-ref sparse-checkout stage stash status stripspace submodule subtree ' +
      'switch symbolic-ref tag unpack-file unpack-objects update-index update-ref update-server-info upload-archive upload-pack var verify-commit verify-pack verify-tag version ' +
      'whatchanged worktree write-tree',
  ),
);

const UPLOAD_PACK: OptionSpec = {
  names: ['--upload-pack'],
  value: 'required',
  named: 'runs the program it is given in place of git-upload-pack',
};
const RECEIVE_PACK: OptionSpec = {
  names: ['--receive-pack', '--exec'],
  value: 'required',
  named: 'runs the program it is given in place of git-receive-pack',
};
const TEMPLATE: OptionSpec = {
  names: ['--template'],
  value: 'required',
  named: 'copies hooks and configuration from a directory it is given',
};
const SEPARATE_GIT_DIR: OptionSpec = {
  names: ['--separate-git-dir'],
  value: 'required',
  named: 'puts the repository in another directory',
};
const DIFF_OPTIONS: OptionSpec[] = [
  { names: ['--output'], value: 'required', named: 'writes to a file it is given (a configuration file, say)' },
  { names: ['--ext-diff'], value: 'none', named: 'runs the external diff program the configuration names' },
];

export const PROGRAM_PROFILES: Readonly<Record<string, ProgramProfile>> = {
  git: {
    style: 'exact',
    globalOptions: GIT_GLOBAL_OPTIONS,
    optionCommands: { '--version': 'version', '-v': 'version', '--help': 'help', '-h': 'help' },
    ownCommands: GIT_COMMANDS,
    otherCommand:
      'is not one of git’s own commands: an alias or an external git-NAME program, which run what the configuration or the PATH says',
    programCommands: [
      ['submodule', 'foreach'],
      ['bisect', 'run'],
      ['for-each-repo'],
      ['filter-branch'],
      ['difftool'],
      ['mergetool'],
      ['merge-index'],
      ['remote-ext'],
      ['remote-fd'],
      ['daemon'],
      ['instaweb'],
      ['shell'],
      ['hook'],
    ],
    commandOptions: {
      'ls-remote': [{ ...UPLOAD_PACK, names: ['--upload-pack', '-u'] }],
      fetch: [UPLOAD_PACK],
      pull: [UPLOAD_PACK],
      'fetch-pack': [{ ...UPLOAD_PACK, names: ['--upload-pack', '--exec'] }],
      clone: [
        { ...UPLOAD_PACK, names: ['--upload-pack', '-u'] },
        TEMPLATE,
        {
          names: ['--config', '-c'],
          value: 'required',
          named: 'sets configuration of the new repository, which can name programs git runs',
        },
        SEPARATE_GIT_DIR,
      ],
      init: [TEMPLATE, SEPARATE_GIT_DIR],
      'init-db': [TEMPLATE, SEPARATE_GIT_DIR],
      push: [RECEIVE_PACK],
      'send-pack': [RECEIVE_PACK],
      archive: [
        { names: ['--exec'], value: 'required', named: 'runs the program it is given in place of git-upload-archive' },
        { names: ['--output', '-o'], value: 'required', named: 'writes to a file it is given' },
      ],
      rebase: [{ names: ['--exec', '-x'], value: 'required', named: 'runs the command it is given after each commit' }],
      grep: [{ names: ['--open-files-in-pager', '-O'], value: 'attached', named: 'opens the files in a program it is given' }],
      ...Object.fromEntries(
        [
          'diff',
          'diff-files',
          'diff-index',
          'diff-tree',
          'log',
          'show',
          'whatchanged',
          'format-patch',
          'range-diff',
          'reflog',
          'stash',
          'rev-list',
        ].map((command) => [command, DIFF_OPTIONS]),
      ),
    },
    abbreviations: true,
    synonyms: [
      [['add'], ['stage']],
      [['init'], ['init-db']],
      [['fsck'], ['fsck-objects']],
    ],
  },

  // docker's global options come before the subcommand only (its parser stops at the first word).
  docker: {
    style: 'pflag',
    globalOptions: [
      {
        names: ['--config'],
        value: 'required',
        named: 'reads its configuration, which names credential helpers and plugins, from another directory',
      },
      { names: ['--context', '-c'], value: 'required', named: 'talks to another Docker daemon' },
      { names: ['--host', '-H'], value: 'required', named: 'talks to another Docker daemon' },
      { names: ['--debug', '-D'], value: 'none' },
      { names: ['--log-level', '-l'], value: 'required' },
      { names: ['--tls'], value: 'none' },
      { names: ['--tlsverify'], value: 'none' },
      { names: ['--tlscacert'], value: 'required' },
      { names: ['--tlscert'], value: 'required' },
      { names: ['--tlskey'], value: 'required' },
    ],
    optionCommands: { '--version': 'version', '-v': 'version', '--help': 'help', '-h': 'help' },
    // `docker run` is `docker container run`: a block of either covers both.
    synonyms: [
      ...'run exec create start stop restart kill cp commit attach logs pause unpause port rename stats top update wait diff export'
        .split(' ')
        .map((verb) => [[verb], ['container', verb]]),
      [['rm'], ['container', 'rm'], ['container', 'remove']],
      [['ps'], ['container', 'ls'], ['container', 'list'], ['container', 'ps']],
      ...'pull push tag save load import history'.split(' ').map((verb) => [[verb], ['image', verb]]),
      [['build'], ['image', 'build'], ['builder', 'build'], ['buildx', 'build'], ['buildx', 'b']],
      [['images'], ['image', 'ls'], ['image', 'list']],
      [['rmi'], ['image', 'rm'], ['image', 'remove']],
      [['info'], ['system', 'info']],
      [['events'], ['system', 'events']],
    ],
  },

  kubectl: {
    style: 'pflag',
    globalsAnywhere: true,
    // -o output, -l selector, -n namespace, -c container: `-ojson`, `-lsvc=x` hold no -s.
    valueLetters: 'olnc',
    globalOptions: [
      ...[
        ['--kubeconfig', 'reads another kubeconfig, which chooses the cluster and can name credential programs'],
        ['--context', 'talks to another cluster'],
        ['--cluster', 'talks to another cluster'],
        ['--server', 'talks to another API server'],
        ['--user', 'acts as another user'],
        ['--token', 'acts as another user'],
        ['--username', 'acts as another user'],
        ['--password', 'acts as another user'],
        ['--as', 'impersonates another user'],
        ['--as-group', 'impersonates another group'],
        ['--as-uid', 'impersonates another user'],
        ['--certificate-authority', 'trusts another certificate authority'],
        ['--client-certificate', 'acts as another user'],
        ['--client-key', 'acts as another user'],
        ['--tls-server-name', 'checks another server name'],
        ['--cache-dir', 'writes its cache in a directory it is given'],
        ['--profile-output', 'writes to a file it is given'],
        ['--profile', 'writes a profile to a file'],
      ].map(([name, named]): OptionSpec => ({ names: name === '--server' ? [name, '-s'] : [name!], value: 'required', named: named! })),
      { names: ['--insecure-skip-tls-verify'], value: 'none', named: 'trusts any server' },
      { names: ['--namespace', '-n'], value: 'required' },
      { names: ['--v', '-v'], value: 'required' },
      { names: ['--vmodule'], value: 'required' },
      { names: ['--request-timeout'], value: 'required' },
      { names: ['--log-flush-frequency'], value: 'required' },
      { names: ['--disable-compression'], value: 'none' },
      { names: ['--match-server-version'], value: 'none' },
      { names: ['--warnings-as-errors'], value: 'none' },
    ],
    optionCommands: { '--help': 'help', '-h': 'help' },
  },

  helm: {
    style: 'pflag',
    globalsAnywhere: true,
    globalOptions: [
      ...[
        ['--kubeconfig', 'reads another kubeconfig, which chooses the cluster and can name credential programs'],
        ['--kube-context', 'talks to another cluster'],
        ['--kube-apiserver', 'talks to another API server'],
        ['--kube-as-user', 'impersonates another user'],
        ['--kube-as-group', 'impersonates another group'],
        ['--kube-token', 'acts as another user'],
        ['--kube-ca-file', 'trusts another certificate authority'],
        ['--kube-tls-server-name', 'checks another server name'],
        ['--registry-config', 'reads registry credentials from a file it is given'],
        ['--repository-config', 'reads its repositories from a file it is given'],
        ['--repository-cache', 'uses another repository cache'],
        ['--content-cache', 'uses another content cache'],
      ].map(([name, named]): OptionSpec => ({ names: [name!], value: 'required', named: named! })),
      { names: ['--kube-insecure-skip-tls-verify'], value: 'none', named: 'trusts any server' },
      { names: ['--namespace', '-n'], value: 'required' },
      { names: ['--debug'], value: 'none' },
      { names: ['--burst-limit'], value: 'required' },
      { names: ['--qps'], value: 'required' },
      { names: ['--color', '--colour'], value: 'required' },
    ],
    optionCommands: { '--help': 'help', '-h': 'help' },
    programCommands: [
      ['plugin', 'install'],
      ['plugin', 'update'],
    ],
    commandOptions: Object.fromEntries(
      ['install', 'upgrade', 'template'].map((command) => [
        command,
        [{ names: ['--post-renderer'], value: 'required', named: 'runs the program it is given on the rendered manifests' }],
      ]),
    ),
  },

  // terraform reads -chdir=DIR, -help and -version before the subcommand (main.go, mitchellh/cli).
  terraform: {
    style: 'exact',
    globalOptions: [{ names: ['-chdir'], value: 'attached', named: 'runs terraform in another directory' }],
    optionCommands: { '-version': 'version', '--version': 'version', '-v': 'version', '-help': 'help', '--help': 'help', '-h': 'help' },
  },
};
