/**
 * Puts the Claude Code CLI stand-in (claude-stand-in.mjs) on a PATH for a test: an executable
 * named `claude` in a directory of its own that plays one recorded transcript, and reads back
 * what the stand-in recorded of each start (argv, cwd, environment, pid) and of the processes
 * and signals it saw.
 */
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const PLAYER = path.join(__dirname, 'claude-stand-in.mjs');
export const TRANSCRIPTS = path.join(__dirname, 'transcripts');

export interface StandInConfig {
  /** A file of transcripts/ to play. */
  transcript?: string;
  exitCode?: number;
  stderr?: string;
  /** Print this on stderr and exit 1 without a stream (a bad flag, a missing login). */
  refuse?: string;
  /** After this line, start a child process and hold until killed. */
  holdAfterLine?: number;
  /** Keep running on SIGTERM (it is recorded): only SIGKILL ends it. */
  ignoreTerm?: boolean;
  /** Files to try to read at start; each is recorded as readable or not. */
  probe?: string[];
}

export interface Recorded {
  event: 'start' | 'child' | 'signal' | 'probe';
  argv?: string[];
  cwd?: string;
  pid?: number;
  uid?: number;
  env?: Record<string, string>;
  path?: string;
  readable?: boolean;
  signal?: string;
}

export interface StandIn {
  /** The directory holding `claude`, to put first on the host's PATH. */
  bin: string;
  /** Everything the stand-in recorded, in order. */
  recorded(): Promise<Recorded[]>;
}

/**
 * Writes (or rewrites) `<dir>/bin/claude` to play `config`, with the player and its transcript
 * beside it, so that it also runs where only that directory is visible (the host's sandbox).
 * It records into `recordIn` (default `dir`): in a sandbox, only the workspace is writable.
 */
export async function installStandIn(dir: string, config: StandInConfig, options: { recordIn?: string } = {}): Promise<StandIn> {
  const bin = path.join(dir, 'bin');
  const record = path.join(options.recordIn ?? dir, 'claude-record.jsonl');
  await mkdir(bin, { recursive: true });
  const player = path.join(bin, 'claude-stand-in.mjs');
  await copyFile(PLAYER, player);
  if (config.transcript) await copyFile(path.join(TRANSCRIPTS, config.transcript), path.join(bin, config.transcript));
  const full = { ...config, record, ...(config.transcript ? { transcript: path.join(bin, config.transcript) } : {}) };
  // The node running the tests, by its path: the host gives the CLI a PATH of its own.
  const script = `#!${process.execPath}\nimport(${JSON.stringify(pathToFileURL(player).href)}).then((m) => m.play(${JSON.stringify(full)}));\n`;
  await writeFile(path.join(bin, 'claude'), script);
  await chmod(path.join(bin, 'claude'), 0o755);
  return {
    bin,
    recorded: async () =>
      (await readFile(record, 'utf8').catch(() => ''))
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Recorded),
  };
}
