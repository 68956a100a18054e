import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';

/** Whether this process may run `file`. */
export function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Where the shell finds `program` on PATH, when it is an executable there. */
export function onPath(program: string): string | undefined {
  const result = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' });
  const found = result.status === 0 ? result.stdout.trim() : '';
  return found && isExecutable(found) ? found : undefined;
}
