/** host/main.ts's HOST_* settings: defaults, and a clear error naming the variable for a wrong value. */
import { hostSettings } from './host-settings';
import { DEFAULT_LIMITS, defaultWorkspaceRoot } from './server';
import { DEFAULT_SANDBOX_SETTINGS } from './sandbox-settings';

describe('hostSettings', () => {
  it('defaults to the shell engine, workspaces under the OS temp dir and the default limits', () => {
    expect(hostSettings({ HOST_TOKEN: 't' })).toEqual({
      token: 't',
      port: 4100,
      metrics: { host: '127.0.0.1', port: 9466 },
      host: '127.0.0.1',
      allowCommands: false,
      engine: 'shell',
      workspaceRoot: defaultWorkspaceRoot(),
      sandbox: DEFAULT_SANDBOX_SETTINGS,
      limits: DEFAULT_LIMITS,
    });
    expect(
      hostSettings({
        HOST_TOKEN: 't',
        HOST_ENGINE: 'script',
        HOST_ALLOW_COMMANDS: 'true',
        HOST_WORKSPACE_ROOT: '/srv/ws',
        HOST_RUN_WALL_TIME_MS: '5000',
        HOST_RUN_OUTPUT_BYTES: '1024',
      }),
    ).toMatchObject({ engine: 'script', allowCommands: true, workspaceRoot: '/srv/ws', limits: { wallTimeMs: 5000, outputBytes: 1024 } });
  });

  it('serves /metrics on HOST_METRICS_PORT (0: off), never on the MCP port', () => {
    expect(hostSettings({ HOST_TOKEN: 't', HOST_METRICS_PORT: '0' }).metrics).toEqual({ host: '127.0.0.1', port: 0 });
    expect(hostSettings({ HOST_TOKEN: 't', HOST_METRICS_PORT: '9999', HOST_METRICS_HOST: '0.0.0.0' }).metrics).toEqual({
      host: '0.0.0.0',
      port: 9999,
    });
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_PORT: '9466' })).toThrow('HOST_METRICS_PORT must differ from HOST_PORT');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_METRICS_PORT: 'x' })).toThrow('HOST_METRICS_PORT must be a port number, got "x"');
  });

  it('names the variable and what it takes when a value is wrong', () => {
    expect(() => hostSettings({})).toThrow('HOST_TOKEN is required');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_ENGINE: 'gpt' })).toThrow(
      'HOST_ENGINE must be one of script, shell, openai, claude-code, got "gpt"',
    );
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_ALLOW_COMMANDS: 'yes' })).toThrow(
      'HOST_ALLOW_COMMANDS must be true or false, got "yes"',
    );
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_WORKSPACE_ROOT: 'rel/dir' })).toThrow(
      'HOST_WORKSPACE_ROOT must be an absolute path, got "rel/dir"',
    );
    for (const value of ['0', '-5', '1.5', 'ten']) {
      expect(() => hostSettings({ HOST_TOKEN: 't', HOST_RUN_WALL_TIME_MS: value })).toThrow(
        `HOST_RUN_WALL_TIME_MS must be a whole number above 0, got "${value}"`,
      );
      expect(() => hostSettings({ HOST_TOKEN: 't', HOST_RUN_OUTPUT_BYTES: value })).toThrow(
        `HOST_RUN_OUTPUT_BYTES must be a whole number above 0, got "${value}"`,
      );
    }
  });

  it('sandboxes commands with bwrap unless HOST_SANDBOX=off; reads its path, user, limits and extra read-only paths', () => {
    expect(hostSettings({ HOST_TOKEN: 't' }).sandbox).toEqual({
      mode: 'bwrap',
      uid: 65534,
      gid: 65534,
      limits: DEFAULT_SANDBOX_SETTINGS.limits,
      readPaths: [],
      toolCommands: false,
    });
    expect(
      hostSettings({
        HOST_TOKEN: 't',
        HOST_SANDBOX: 'off',
        BWRAP_PATH: '/opt/bwrap',
        HOST_SANDBOX_UID: '1500',
        HOST_SANDBOX_GID: '1600',
        HOST_SANDBOX_MEMORY_MB: '512',
        HOST_SANDBOX_MAX_PROCESSES: '64',
        HOST_SANDBOX_CPU_SECONDS: '30',
        HOST_SANDBOX_FILE_SIZE_MB: '10',
        HOST_SANDBOX_TMP_MB: '20',
        HOST_SANDBOX_READ_PATHS: '/opt/tools:/srv/shared',
        HOST_SANDBOX_TOOL_COMMANDS: 'true',
      }).sandbox,
    ).toEqual({
      mode: 'off',
      bwrapPath: '/opt/bwrap',
      uid: 1500,
      gid: 1600,
      limits: { memoryMb: 512, maxProcesses: 64, cpuSeconds: 30, fileSizeMb: 10, tmpMb: 20 },
      readPaths: ['/opt/tools', '/srv/shared'],
      toolCommands: true,
    });
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_SANDBOX: 'docker' })).toThrow('HOST_SANDBOX must be bwrap or off, got "docker"');
    expect(() => hostSettings({ HOST_TOKEN: 't', BWRAP_PATH: 'bwrap' })).toThrow('BWRAP_PATH must be an absolute path, got "bwrap"');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_SANDBOX_UID: '0' })).toThrow(
      'HOST_SANDBOX_UID must be a user or group id above 0 (not root), got "0"',
    );
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_SANDBOX_MEMORY_MB: 'lots' })).toThrow(
      'HOST_SANDBOX_MEMORY_MB must be a whole number above 0, got "lots"',
    );
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_SANDBOX_READ_PATHS: 'tools' })).toThrow(
      'HOST_SANDBOX_READ_PATHS must be absolute paths separated by :, got "tools"',
    );
  });

  it('HOST_DATA_DIR keeps tasks across restarts (absolute path); HOST_INPUT_TIMEOUT_MS bounds the wait for an answer', () => {
    expect(hostSettings({ HOST_TOKEN: 't' })).not.toHaveProperty('dataDir');
    expect(hostSettings({ HOST_TOKEN: 't', HOST_DATA_DIR: '/srv/host', HOST_INPUT_TIMEOUT_MS: '60000' })).toMatchObject({
      dataDir: '/srv/host',
      inputTimeoutMs: 60000,
    });
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_DATA_DIR: 'data' })).toThrow('HOST_DATA_DIR must be an absolute path, got "data"');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_INPUT_TIMEOUT_MS: '0' })).toThrow(
      'HOST_INPUT_TIMEOUT_MS must be a whole number above 0, got "0"',
    );
  });
});
