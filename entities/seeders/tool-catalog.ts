export type ToolCategory =
  'vcs' | 'container' | 'orchestration' | 'runtime' | 'package-manager' | 'database-client' | 'cli' | 'infrastructure';

export interface ToolCatalogEntry {
  name: string;
  displayName: string;
  description: string;
  category: ToolCategory;
  installCommand: string;
  uninstallCommand: string;
  versionCommand: string;
  versionRegex: string;
  homepage: string;
}

const APT_GET = 'DEBIAN_FRONTEND=noninteractive apt-get';

const aptInstall = (...packages: string[]): string => `${APT_GET} update && ${APT_GET} install -y ${packages.join(' ')}`;

const aptPurge = (...packages: string[]): string => `${APT_GET} purge -y --auto-remove ${packages.join(' ')}`;

const join = (...steps: string[]): string => steps.join(' && ');

// Vendor repositories and install scripts need these before the tool itself can be fetched.
const ENSURE_FETCH_PREREQS = `(command -v curl >/dev/null 2>&1 && command -v gpg >/dev/null 2>&1 && [ -f /etc/ssl/certs/ca-certificates.crt ] || (${aptInstall('curl', 'ca-certificates', 'gnupg')}))`;

const REQUIRE_NPM = "(command -v npm >/dev/null 2>&1 || { echo 'npm not found: install nodejs first' >&2; exit 1; })";

const DOCKER_APT_REPO = join(
  ENSURE_FETCH_PREREQS,
  '. /etc/os-release',
  'install -m 0755 -d /etc/apt/keyrings',
  'curl -fsSL "https://download.docker.com/linux/$ID/gpg" -o /etc/apt/keyrings/docker.asc',
  'chmod a+r /etc/apt/keyrings/docker.asc',
  'echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/docker.asc] https://download.docker.com/linux/$ID $VERSION_CODENAME stable" > /etc/apt/sources.list.d/docker.list',
);

export const TOOL_CATALOG: readonly ToolCatalogEntry[] = [
  {
    name: 'git',
    displayName: 'Git',
    description: 'Distributed version control system.',
    category: 'vcs',
    installCommand: aptInstall('git'),
    uninstallCommand: aptPurge('git'),
    versionCommand: 'git --version',
    versionRegex: String.raw`git version (\d+\.\d+\.\d+)`,
    homepage: 'https://git-scm.com',
  },
  {
    name: 'gh',
    displayName: 'GitHub CLI',
    description: 'Command-line client for GitHub pull requests, issues, releases and Actions.',
    category: 'vcs',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      'install -m 0755 -d /etc/apt/keyrings',
      'curl -fsSL https://cli.github.com/packages/githubcli-archive-keyring.gpg -o /etc/apt/keyrings/githubcli-archive-keyring.gpg',
      'chmod go+r /etc/apt/keyrings/githubcli-archive-keyring.gpg',
      'echo "deb [arch=$(dpkg --print-architecture) signed-by=/etc/apt/keyrings/githubcli-archive-keyring.gpg] https://cli.github.com/packages stable main" > /etc/apt/sources.list.d/github-cli.list',
      aptInstall('gh'),
    ),
    uninstallCommand: join(aptPurge('gh'), 'rm -f /etc/apt/sources.list.d/github-cli.list /etc/apt/keyrings/githubcli-archive-keyring.gpg'),
    versionCommand: 'gh --version',
    versionRegex: String.raw`gh version (\d+\.\d+\.\d+)`,
    homepage: 'https://cli.github.com',
  },
  {
    name: 'docker',
    displayName: 'Docker Engine',
    description: 'Container runtime and CLI from the official Docker apt repository, including Buildx and the Compose plugin.',
    category: 'container',
    installCommand: join(
      DOCKER_APT_REPO,
      aptInstall('docker-ce', 'docker-ce-cli', 'containerd.io', 'docker-buildx-plugin', 'docker-compose-plugin'),
    ),
    uninstallCommand: join(
      aptPurge('docker-ce', 'docker-ce-cli', 'containerd.io', 'docker-buildx-plugin', 'docker-compose-plugin'),
      'rm -f /etc/apt/sources.list.d/docker.list /etc/apt/keyrings/docker.asc',
    ),
    versionCommand: 'docker --version',
    versionRegex: String.raw`Docker version (\d+\.\d+\.\d+)`,
    homepage: 'https://www.docker.com',
  },
  {
    name: 'docker-compose',
    displayName: 'Docker Compose',
    description: 'Docker CLI plugin for defining and running multi-container applications.',
    category: 'container',
    installCommand: join(DOCKER_APT_REPO, aptInstall('docker-compose-plugin')),
    uninstallCommand: aptPurge('docker-compose-plugin'),
    versionCommand: 'docker compose version',
    versionRegex: String.raw`Docker Compose version v?(\d+\.\d+\.\d+)`,
    homepage: 'https://docs.docker.com/compose/',
  },
  {
    // Not packaged by Debian/Ubuntu; the pkgs.k8s.io apt repo is pinned per minor release, so the
    // upstream binary for the current stable release is used instead.
    name: 'kubectl',
    displayName: 'kubectl',
    description: 'Command-line client for Kubernetes clusters.',
    category: 'orchestration',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      'KUBECTL_VERSION="$(curl -fsSL https://dl.k8s.io/release/stable.txt)"',
      `curl -fsSL "https://dl.k8s.io/release/$KUBECTL_VERSION/bin/linux/$(dpkg --print-architecture | sed 's/^armhf$/arm/')/kubectl" -o /tmp/kubectl`,
      'install -o root -g root -m 0755 /tmp/kubectl /usr/local/bin/kubectl',
      'rm -f /tmp/kubectl',
    ),
    uninstallCommand: 'rm -f /usr/local/bin/kubectl',
    versionCommand: 'kubectl version --client',
    versionRegex: String.raw`Client Version: (?:version\.Info\{.*?GitVersion:")?v(\d+\.\d+\.\d+)`,
    homepage: 'https://kubernetes.io/docs/reference/kubectl/',
  },
  {
    name: 'helm',
    displayName: 'Helm',
    description: 'Package manager for Kubernetes charts.',
    category: 'orchestration',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      '(command -v openssl >/dev/null 2>&1 || ' + aptInstall('openssl') + ')',
      'curl -fsSL https://raw.githubusercontent.com/helm/helm/main/scripts/get-helm-3 | bash',
    ),
    uninstallCommand: 'rm -f /usr/local/bin/helm',
    versionCommand: 'helm version --short',
    versionRegex: String.raw`v(\d+\.\d+\.\d+)`,
    homepage: 'https://helm.sh',
  },
  {
    // Distribution packages lag far behind (Ubuntu 22.04 ships Node 12), so NodeSource's LTS line is used.
    name: 'nodejs',
    displayName: 'Node.js',
    description: 'JavaScript runtime (NodeSource 22.x LTS) including npm.',
    category: 'runtime',
    installCommand: join(ENSURE_FETCH_PREREQS, 'curl -fsSL https://deb.nodesource.com/setup_22.x | bash -', aptInstall('nodejs')),
    uninstallCommand: join(
      aptPurge('nodejs'),
      'rm -f /etc/apt/sources.list.d/nodesource.list /etc/apt/keyrings/nodesource.gpg /etc/apt/preferences.d/nodejs /etc/apt/preferences.d/nsolid',
    ),
    versionCommand: 'node --version',
    versionRegex: String.raw`v(\d+\.\d+\.\d+)`,
    homepage: 'https://nodejs.org',
  },
  {
    name: 'python3',
    displayName: 'Python 3',
    description: 'Python 3 interpreter with pip and venv.',
    category: 'runtime',
    installCommand: aptInstall('python3', 'python3-pip', 'python3-venv'),
    // python3 itself is a dependency of core system packages on Debian/Ubuntu; removing it breaks the host.
    uninstallCommand: aptPurge('python3-pip', 'python3-venv'),
    versionCommand: 'python3 --version',
    versionRegex: String.raw`Python (\d+\.\d+\.\d+)`,
    homepage: 'https://www.python.org',
  },
  {
    // Distribution golang-go is too old for current modules, so the official tarball is used.
    name: 'go',
    displayName: 'Go',
    description: 'Go toolchain from the official go.dev release tarball.',
    category: 'runtime',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      'GO_VERSION="$(curl -fsSL "https://go.dev/VERSION?m=text" | head -n 1)"',
      `curl -fsSL "https://go.dev/dl/$GO_VERSION.linux-$(dpkg --print-architecture | sed 's/^armhf$/armv6l/; s/^i386$/386/').tar.gz" -o /tmp/go.tar.gz`,
      'rm -rf /usr/local/go',
      'tar -C /usr/local -xzf /tmp/go.tar.gz',
      'rm -f /tmp/go.tar.gz',
      'ln -sf /usr/local/go/bin/go /usr/local/bin/go',
      'ln -sf /usr/local/go/bin/gofmt /usr/local/bin/gofmt',
    ),
    uninstallCommand: 'rm -rf /usr/local/go /usr/local/bin/go /usr/local/bin/gofmt',
    versionCommand: 'go version',
    versionRegex: String.raw`go version go(\d+\.\d+(?:\.\d+)?)`,
    homepage: 'https://go.dev',
  },
  {
    // rustup installs into $HOME; symlinks put the proxies on PATH for non-login shells.
    name: 'rust',
    displayName: 'Rust',
    description: 'Rust toolchain (rustc and cargo) installed via rustup with a C linker.',
    category: 'runtime',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      aptInstall('build-essential'),
      "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --no-modify-path",
      'for bin in rustup rustc cargo; do ln -sf "$HOME/.cargo/bin/$bin" "/usr/local/bin/$bin"; done',
    ),
    uninstallCommand: join(
      '("$HOME/.cargo/bin/rustup" self uninstall -y || true)',
      'rm -f /usr/local/bin/rustup /usr/local/bin/rustc /usr/local/bin/cargo',
    ),
    versionCommand: 'rustc --version',
    versionRegex: String.raw`rustc (\d+\.\d+\.\d+)`,
    homepage: 'https://www.rust-lang.org',
  },
  {
    name: 'pnpm',
    displayName: 'pnpm',
    description: 'Fast, disk-efficient Node.js package manager (requires nodejs).',
    category: 'package-manager',
    installCommand: join(REQUIRE_NPM, 'npm install -g pnpm@latest'),
    uninstallCommand: 'npm uninstall -g pnpm',
    versionCommand: 'pnpm --version',
    versionRegex: String.raw`(\d+\.\d+\.\d+)`,
    homepage: 'https://pnpm.io',
  },
  {
    name: 'yarn',
    displayName: 'Yarn',
    description: 'Yarn Classic Node.js package manager (requires nodejs).',
    category: 'package-manager',
    installCommand: join(REQUIRE_NPM, 'npm install -g yarn'),
    uninstallCommand: 'npm uninstall -g yarn',
    versionCommand: 'yarn --version',
    versionRegex: String.raw`(\d+\.\d+\.\d+)`,
    homepage: 'https://classic.yarnpkg.com',
  },
  {
    name: 'psql',
    displayName: 'PostgreSQL client (psql)',
    description: 'Interactive terminal client for PostgreSQL.',
    category: 'database-client',
    installCommand: aptInstall('postgresql-client'),
    uninstallCommand: aptPurge('postgresql-client'),
    versionCommand: 'psql --version',
    versionRegex: String.raw`psql \(PostgreSQL\) (\d+(?:\.\d+)*)`,
    homepage: 'https://www.postgresql.org/docs/current/app-psql.html',
  },
  {
    name: 'redis-cli',
    displayName: 'Redis CLI',
    description: 'Command-line client for Redis servers.',
    category: 'database-client',
    installCommand: aptInstall('redis-tools'),
    uninstallCommand: aptPurge('redis-tools'),
    versionCommand: 'redis-cli --version',
    versionRegex: String.raw`redis-cli (\d+\.\d+\.\d+)`,
    homepage: 'https://redis.io/docs/latest/develop/tools/cli/',
  },
  {
    name: 'jq',
    displayName: 'jq',
    description: 'Command-line JSON processor.',
    category: 'cli',
    installCommand: aptInstall('jq'),
    uninstallCommand: aptPurge('jq'),
    versionCommand: 'jq --version',
    versionRegex: String.raw`jq-(\d+\.\d+(?:\.\d+)?)`,
    homepage: 'https://jqlang.org',
  },
  {
    name: 'curl',
    displayName: 'curl',
    description: 'Command-line tool for transferring data with URLs.',
    category: 'cli',
    installCommand: aptInstall('curl', 'ca-certificates'),
    uninstallCommand: aptPurge('curl'),
    versionCommand: 'curl --version',
    versionRegex: String.raw`curl (\d+\.\d+\.\d+)`,
    homepage: 'https://curl.se',
  },
  {
    name: 'ripgrep',
    displayName: 'ripgrep',
    description: 'Fast recursive regex search that respects .gitignore.',
    category: 'cli',
    installCommand: aptInstall('ripgrep'),
    uninstallCommand: aptPurge('ripgrep'),
    versionCommand: 'rg --version',
    versionRegex: String.raw`ripgrep (\d+\.\d+\.\d+)`,
    homepage: 'https://github.com/BurntSushi/ripgrep',
  },
  {
    name: 'tmux',
    displayName: 'tmux',
    description: 'Terminal multiplexer for persistent shell sessions.',
    category: 'cli',
    installCommand: aptInstall('tmux'),
    uninstallCommand: aptPurge('tmux'),
    versionCommand: 'tmux -V',
    versionRegex: String.raw`tmux (?:next-)?(\d+\.\d+[a-z]?)`,
    homepage: 'https://github.com/tmux/tmux',
  },
  {
    name: 'make',
    displayName: 'GNU Make',
    description: 'Build automation tool driven by Makefiles.',
    category: 'cli',
    installCommand: aptInstall('make'),
    uninstallCommand: aptPurge('make'),
    versionCommand: 'make --version',
    versionRegex: String.raw`GNU Make (\d+\.\d+(?:\.\d+)?)`,
    homepage: 'https://www.gnu.org/software/make/',
  },
  {
    name: 'unzip',
    displayName: 'UnZip',
    description: 'Extractor for ZIP archives.',
    category: 'cli',
    installCommand: aptInstall('unzip'),
    uninstallCommand: aptPurge('unzip'),
    versionCommand: 'unzip -v',
    versionRegex: String.raw`UnZip (\d+\.\d+)`,
    homepage: 'https://infozip.sourceforge.net/UnZip.html',
  },
  {
    name: 'terraform',
    displayName: 'Terraform',
    description: 'Infrastructure-as-code tool from the HashiCorp apt repository.',
    category: 'infrastructure',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      '. /etc/os-release',
      'curl -fsSL https://apt.releases.hashicorp.com/gpg | gpg --batch --yes --dearmor -o /usr/share/keyrings/hashicorp-archive-keyring.gpg',
      'echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/hashicorp-archive-keyring.gpg] https://apt.releases.hashicorp.com $VERSION_CODENAME main" > /etc/apt/sources.list.d/hashicorp.list',
      aptInstall('terraform'),
    ),
    uninstallCommand: join(
      aptPurge('terraform'),
      'rm -f /etc/apt/sources.list.d/hashicorp.list /usr/share/keyrings/hashicorp-archive-keyring.gpg',
    ),
    versionCommand: 'terraform version',
    versionRegex: String.raw`Terraform v(\d+\.\d+\.\d+)`,
    homepage: 'https://developer.hashicorp.com/terraform',
  },
  {
    name: 'aws-cli',
    displayName: 'AWS CLI',
    description: 'AWS Command Line Interface v2 from the official installer.',
    category: 'infrastructure',
    installCommand: join(
      ENSURE_FETCH_PREREQS,
      '(command -v unzip >/dev/null 2>&1 || ' + aptInstall('unzip') + ')',
      'curl -fsSL "https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip" -o /tmp/awscliv2.zip',
      'rm -rf /tmp/aws',
      'unzip -q /tmp/awscliv2.zip -d /tmp',
      '/tmp/aws/install --update',
      'rm -rf /tmp/aws /tmp/awscliv2.zip',
    ),
    uninstallCommand: 'rm -rf /usr/local/bin/aws /usr/local/bin/aws_completer /usr/local/aws-cli',
    versionCommand: 'aws --version',
    versionRegex: String.raw`aws-cli/(\d+\.\d+\.\d+)`,
    homepage: 'https://aws.amazon.com/cli/',
  },
];

export function parseToolVersion(entry: Pick<ToolCatalogEntry, 'versionRegex'>, output: string): string | null {
  const match = new RegExp(entry.versionRegex).exec(output);
  return match?.[1] ?? null;
}
