/** `npm run claude-code:install`: the real Claude Code CLI into .tools/claude-code (dev/claude-code-cli.ts), once. */
import { installClaudeCode } from '../dev/claude-code-cli';

installClaudeCode({ cliPath: process.env.CLAUDE_CODE_PATH || undefined, log: (message) => console.log(message) }).then(
  ({ path, version }) => console.log(`Claude Code ${version}: ${path}`),
  (error: unknown) => {
    console.error((error as Error).message);
    process.exit(1);
  },
);
