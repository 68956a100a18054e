/**
 * A stand-in for the Claude Code CLI, which this machine cannot install (it is a vendor
 * binary that needs the network and an account). It replays a recorded `--output-format
 * stream-json` transcript, written from the CLI's documented message format, so the
 * claude-code engine is tested against a real process on PATH: spawned with real flags in a
 * real workspace, read line by line, cancelled by a real signal.
 *
 * It does what the real CLI does around the stream, and no more: `--version` prints a version;
 * every other call records its argv, cwd, environment and pid, then prints the transcript's lines (with
 * `{{cwd}}` replaced by its working directory, as the CLI writes absolute paths), carrying out
 * the Write and Edit tool uses it announces on the files they name, as the CLI would. Optional
 * behaviour, set by the test that writes the wrapper script: refuse to start (stderr, exit 1), hold after a line with a child
 * process (a Bash command still running) until a signal comes, ignore SIGTERM, end with a
 * given exit code and stderr, record whether it can read given files.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

function record(config, entry) {
  appendFileSync(config.record, `${JSON.stringify(entry)}\n`);
}

/** Carries out a file edit the transcript's assistant announces, as the CLI's tools would. */
function applyEdit(use) {
  const input = use.input ?? {};
  if (use.name === 'Write' && typeof input.file_path === 'string') {
    writeFileSync(input.file_path, String(input.content ?? ''));
  } else if (use.name === 'Edit' && typeof input.file_path === 'string') {
    let text;
    try {
      text = readFileSync(input.file_path, 'utf8');
    } catch {
      return;
    }
    // The CLI refuses an edit whose old text is not there; the transcript says so in its tool_result.
    if (text.includes(input.old_string)) writeFileSync(input.file_path, text.replace(input.old_string, input.new_string));
  }
}

function toolUses(line) {
  try {
    const message = JSON.parse(line);
    if (message.type !== 'assistant') return [];
    return (message.message?.content ?? []).filter((block) => block.type === 'tool_use');
  } catch {
    return [];
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function play(config) {
  const argv = process.argv.slice(2);
  if (argv.includes('--version')) {
    process.stdout.write(`${config.version ?? '2.0.14'} (Claude Code)\n`);
    return;
  }
  if (config.refuse) {
    // What the real CLI does with a bad flag or a missing login: a message on stderr, exit 1, no stream.
    process.stderr.write(config.refuse);
    process.exitCode = 1;
    return;
  }
  record(config, { event: 'start', argv, cwd: process.cwd(), pid: process.pid, uid: process.getuid(), env: process.env });
  // Files a test expects the CLI not to see (the host's own, in a sandbox).
  for (const file of config.probe ?? []) {
    let readable = true;
    try {
      readFileSync(file);
    } catch {
      readable = false;
    }
    record(config, { event: 'probe', path: file, readable });
  }
  process.on('SIGTERM', () => {
    record(config, { event: 'signal', signal: 'SIGTERM' });
    if (!config.ignoreTerm) process.exit(143);
  });

  const cwd = JSON.stringify(process.cwd()).slice(1, -1);
  const lines = readFileSync(config.transcript, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .map((line) => line.replaceAll('{{cwd}}', cwd));
  for (const [index, line] of lines.entries()) {
    await new Promise((resolve) => process.stdout.write(`${line}\n`, resolve));
    for (const use of toolUses(line)) applyEdit(use);
    if (config.holdAfterLine === index + 1) {
      // A Bash command still running when the run is cancelled: it must die with the CLI's group.
      const child = spawn('sleep', ['30'], { stdio: 'ignore' });
      record(config, { event: 'child', pid: child.pid });
      // Held by a timer, not by the child: the CLI stays up whatever becomes of its command.
      setInterval(() => {}, 1000);
      await new Promise(() => {});
    }
    await sleep(config.delayMs ?? 2);
  }
  if (config.stderr) process.stderr.write(config.stderr);
  process.exitCode = config.exitCode ?? 0;
}
