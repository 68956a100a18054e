/** host/main.ts's HOST_* settings: defaults, and a clear error naming the variable for a wrong value. */
import { hostSettings } from './host-settings';
import { DEFAULT_LIMITS, defaultWorkspaceRoot } from './server';

describe('hostSettings', () => {
  it('defaults to the shell engine, workspaces under the OS temp dir and the default limits', () => {
    expect(hostSettings({ HOST_TOKEN: 't' })).toEqual({
      token: 't',
      port: 4100,
      host: '127.0.0.1',
      allowCommands: false,
      engine: 'shell',
      workspaceRoot: defaultWorkspaceRoot(),
      limits: DEFAULT_LIMITS,
    });
    expect(
      hostSettings({ HOST_TOKEN: 't', HOST_ENGINE: 'script', HOST_ALLOW_COMMANDS: 'true', HOST_WORKSPACE_ROOT: '/srv/ws', HOST_RUN_WALL_TIME_MS: '5000', HOST_RUN_OUTPUT_BYTES: '1024' }),
    ).toMatchObject({ engine: 'script', allowCommands: true, workspaceRoot: '/srv/ws', limits: { wallTimeMs: 5000, outputBytes: 1024 } });
  });

  it('names the variable and what it takes when a value is wrong', () => {
    expect(() => hostSettings({})).toThrow('HOST_TOKEN is required');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_ENGINE: 'gpt' })).toThrow('HOST_ENGINE must be one of script, shell, openai, claude-code, got "gpt"');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_ALLOW_COMMANDS: 'yes' })).toThrow('HOST_ALLOW_COMMANDS must be true or false, got "yes"');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_WORKSPACE_ROOT: 'rel/dir' })).toThrow('HOST_WORKSPACE_ROOT must be an absolute path, got "rel/dir"');
    for (const value of ['0', '-5', '1.5', 'ten']) {
      expect(() => hostSettings({ HOST_TOKEN: 't', HOST_RUN_WALL_TIME_MS: value })).toThrow(`HOST_RUN_WALL_TIME_MS must be a whole number above 0, got "${value}"`);
      expect(() => hostSettings({ HOST_TOKEN: 't', HOST_RUN_OUTPUT_BYTES: value })).toThrow(`HOST_RUN_OUTPUT_BYTES must be a whole number above 0, got "${value}"`);
    }
  });

  it('HOST_DATA_DIR keeps tasks across restarts (absolute path); HOST_INPUT_TIMEOUT_MS bounds the wait for an answer', () => {
    expect(hostSettings({ HOST_TOKEN: 't' })).not.toHaveProperty('dataDir');
    expect(hostSettings({ HOST_TOKEN: 't', HOST_DATA_DIR: '/srv/host', HOST_INPUT_TIMEOUT_MS: '60000' })).toMatchObject({ dataDir: '/srv/host', inputTimeoutMs: 60000 });
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_DATA_DIR: 'data' })).toThrow('HOST_DATA_DIR must be an absolute path, got "data"');
    expect(() => hostSettings({ HOST_TOKEN: 't', HOST_INPUT_TIMEOUT_MS: '0' })).toThrow('HOST_INPUT_TIMEOUT_MS must be a whole number above 0, got "0"');
  });
});
