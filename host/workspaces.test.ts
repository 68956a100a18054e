import { lstat, mkdir, mkdtemp, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gitConfigPath, resetGitConfig } from './workspaces';

describe("an agent's global git configuration", () => {
  let dir: string;
  let workspace: string;
  let file: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'workspaces-test-'));
    workspace = path.join(dir, 'agent');
    await mkdir(workspace);
    file = gitConfigPath(workspace);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it("stays the same file while it is what the host writes: another command's bwrap may be mounting it", async () => {
    await resetGitConfig(workspace);
    const first = await lstat(file);
    await resetGitConfig(workspace);
    // Replaced (a new inode), a bwrap binding it meanwhile fails: "Unable to find ... (deleted) in mount table".
    expect((await lstat(file)).ino).toBe(first.ino);
    expect(first.mode & 0o777).toBe(0o444);
  });

  it('is written afresh when an agent changed it, made it writable, or put a directory in its place', async () => {
    await resetGitConfig(workspace);
    const written = await readFile(file, 'utf8');

    await chmod(file, 0o644);
    await writeFile(file, '[core]\n\tpager = touch ran\n');
    await resetGitConfig(workspace);
    expect(await readFile(file, 'utf8')).toBe(written);
    expect((await lstat(file)).mode & 0o777).toBe(0o444);

    await chmod(file, 0o644);
    await resetGitConfig(workspace);
    expect((await lstat(file)).mode & 0o777).toBe(0o444);

    await rm(file);
    await mkdir(path.join(file, 'inside'), { recursive: true });
    await resetGitConfig(workspace);
    expect((await lstat(file)).isFile()).toBe(true);
    expect(await readFile(file, 'utf8')).toBe(written);
  });
});
