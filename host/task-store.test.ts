/**
 * HostTaskStore on its own: sessions ignored, one task per executionId, a result for every
 * terminal state, the cancel hook, TTL from the terminal time, and the data dir across a
 * restart (a lost run is failed, never completed; expired and half-written files go).
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Request } from '@modelcontextprotocol/sdk/types.js';
import { HostTaskStore, MAX_QUEUED, MAX_TASK_TTL_MS, RESTART_LOST } from './task-store';

const stores: HostTaskStore[] = [];
const dirs: string[] = [];

afterEach(async () => {
  await Promise.allSettled(stores.splice(0).map((store) => store.close()));
  await Promise.allSettled(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function open(dataDir?: string): Promise<HostTaskStore> {
  const store = new HostTaskStore(dataDir === undefined ? {} : { dataDir });
  await store.open();
  stores.push(store);
  return store;
}

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'task-store-'));
  dirs.push(dir);
  return dir;
}

/** The tools/call request as the SDK hands it to createTask. */
function call(executionId: string | undefined, task = true, name = 'execute_prompt'): Request {
  return {
    method: 'tools/call',
    params: { name, arguments: executionId === undefined ? {} : { executionId }, ...(task ? { task: { ttl: 1000 } } : {}) },
  };
}

describe('HostTaskStore', () => {
  it('ignores the session: a task created in one session is found, listed, finished and read from any other', async () => {
    const store = await open();
    const task = await store.createTask({ ttl: 60_000 }, 1, call('e1'), 'session-a');
    expect(await store.getTask(task.taskId, 'session-b')).toMatchObject({ taskId: task.taskId, status: 'working' });
    expect((await store.listTasks(undefined, 'session-c')).tasks.map((t) => t.taskId)).toEqual([task.taskId]);
    await store.storeTaskResult(task.taskId, 'completed', { content: [] }, 'session-d');
    expect(await store.getTaskResult(task.taskId, 'session-e')).toEqual({ content: [] });
  });

  it('one task per (tool, executionId) for task-mode calls; plain calls are neither deduplicated nor listed', async () => {
    const store = await open();
    const first = await store.createTask({}, 1, call('e1'));
    expect(store.claimRun(first.taskId)).toBe(true);
    const again = await store.createTask({}, 2, call('e1'));
    expect(again.taskId).toBe(first.taskId);
    expect(store.claimRun(again.taskId)).toBe(false);
    expect((await store.createTask({}, 3, call('e1', true, 'install_tool'))).taskId).not.toBe(first.taskId);
    expect((await store.createTask({}, 4, call(undefined))).taskId).not.toBe(first.taskId);

    const plain = await store.createTask({}, 5, call('e1', false));
    expect(plain.taskId).not.toBe(first.taskId);
    expect(store.isEphemeral(plain.taskId)).toBe(true);
    expect((await store.listTasks()).tasks.map((t) => t.taskId)).not.toContain(plain.taskId);
    // Its result is read once, by the call that made it.
    await store.storeTaskResult(plain.taskId, 'completed', { content: [] });
    await store.getTaskResult(plain.taskId);
    expect(await store.getTask(plain.taskId)).toBeNull();
  });

  it('a cancelled task has a result, keeps its status against the run ending later, and fires the cancel hook', async () => {
    const store = await open();
    const cancelled: string[] = [];
    store.onCancelled((taskId) => cancelled.push(taskId));
    const task = await store.createTask({}, 1, call('e1'));
    await store.updateTaskStatus(task.taskId, 'cancelled', 'Client cancelled task execution.');
    expect(cancelled).toEqual([task.taskId]);
    await store.storeTaskResult(task.taskId, 'failed', { isError: true, content: [{ type: 'text', text: 'cancelled' }] });
    expect(await store.getTask(task.taskId)).toMatchObject({ status: 'cancelled', statusMessage: 'Client cancelled task execution.' });
    expect(await store.getTaskResult(task.taskId)).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'Client cancelled task execution.' }],
    });
  });

  it('a question waits until answered; a cancel answers it `cancel`', async () => {
    const store = await open();
    const task = await store.createTask({}, 1, call('e1'));
    const asked = store.ask(task.taskId, { message: 'Go?', requestedSchema: { type: 'object', properties: {} } });
    expect(await store.getTask(task.taskId)).toMatchObject({ status: 'input_required', statusMessage: 'Go?' });
    const pending = store.pendingInput(task.taskId)!;
    expect(store.answer(task.taskId, pending.seq + 1, { action: 'accept' })).toBe(false);
    expect(store.answer(task.taskId, pending.seq, { action: 'accept', content: { ok: true } })).toBe(true);
    expect(await asked).toEqual({ action: 'accept', content: { ok: true } });
    expect(await store.getTask(task.taskId)).toEqual(expect.objectContaining({ status: 'working' }));
    expect(await store.getTask(task.taskId)).not.toHaveProperty('statusMessage');
    expect(store.answer(task.taskId, pending.seq, { action: 'decline' })).toBe(false);

    const second = store.ask(task.taskId, { message: 'Again?', requestedSchema: { type: 'object', properties: {} } });
    await store.updateTaskStatus(task.taskId, 'cancelled');
    expect(await second).toMatchObject({ action: 'cancel' });
    expect(store.pendingInput(task.taskId)).toBeUndefined();

    const expiring = await store.createTask({}, 2, call('e2'));
    expect(
      await store.ask(expiring.taskId, { message: 'Quick?', requestedSchema: { type: 'object', properties: {} } }, { expireAfterMs: 20 }),
    ).toEqual({
      action: 'cancel',
      reason: 'no answer within 20 ms',
    });
  });

  it('holds a run back while its queue is full, until tasks/result takes some or the run is stopped', async () => {
    const store = await open();
    const task = await store.createTask({}, 1, call('e1'));
    const event = { method: 'notifications/message', params: { level: 'info', data: {} } };
    for (let i = 0; i < MAX_QUEUED; i++) await store.enqueue(task.taskId, event);
    let through = false;
    const held = store.enqueue(task.taskId, event).then(() => (through = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(through).toBe(false);
    store.shift(task.taskId);
    await held;
    const stop = new AbortController();
    stop.abort();
    await store.enqueue(task.taskId, event, stop.signal);
    expect(store.peek(task.taskId)?.params?._meta).toEqual({ 'io.modelcontextprotocol/related-task': { taskId: task.taskId } });
  });

  it('keeps a finished task for its TTL from the moment it finished; caps the TTL', async () => {
    const store = await open();
    const task = await store.createTask({ ttl: 50 }, 1, call('e1'));
    await new Promise((resolve) => setTimeout(resolve, 80));
    // Still running: a running task does not expire.
    expect(await store.getTask(task.taskId)).not.toBeNull();
    await store.storeTaskResult(task.taskId, 'completed', { content: [] });
    expect(await store.getTask(task.taskId)).toMatchObject({ status: 'completed' });
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(await store.getTask(task.taskId)).toBeNull();
    // Gone with it: the executionId may start a new task.
    expect((await store.createTask({}, 2, call('e1'))).taskId).not.toBe(task.taskId);
    expect((await store.createTask({ ttl: MAX_TASK_TTL_MS * 2 }, 3, call('e3'))).ttl).toBe(MAX_TASK_TTL_MS);
    expect((await store.createTask({ ttl: null }, 4, call('e4'))).ttl).toBe(MAX_TASK_TTL_MS);
  });

  it('with a data dir: a restart fails the running tasks with RESTART_LOST, keeps the finished ones, drops expired and half-written files', async () => {
    const dataDir = await tempDir();
    const before = await open(dataDir);
    const running = await before.createTask({ ttl: 60_000 }, 1, call('running'));
    void before.ask(running.taskId, { message: 'Waiting?', requestedSchema: { type: 'object', properties: {} } });
    const done = await before.createTask({ ttl: 60_000 }, 2, call('done'));
    await before.storeTaskResult(done.taskId, 'completed', { content: [{ type: 'text', text: 'ok' }] });
    const expired = await before.createTask({ ttl: 10 }, 3, call('expired'));
    await before.storeTaskResult(expired.taskId, 'completed', { content: [] });
    await before.close();
    const files = path.join(dataDir, 'tasks');
    expect((await readdir(files)).sort()).toEqual([running.taskId, done.taskId, expired.taskId].map((id) => `${id}.json`).sort());
    expect(JSON.parse(await readFile(path.join(files, `${running.taskId}.json`), 'utf8'))).toMatchObject({
      task: { status: 'input_required' },
      executionId: 'running',
      pendingInput: { params: { message: 'Waiting?' } },
    });
    await writeFile(path.join(files, `${done.taskId}.json.abc.tmp`), '{"half');
    await new Promise((resolve) => setTimeout(resolve, 20));

    const after = await open(dataDir);
    expect(await after.getTask(running.taskId)).toMatchObject({ status: 'failed', statusMessage: RESTART_LOST });
    expect(await after.getTaskResult(running.taskId)).toEqual({ isError: true, content: [{ type: 'text', text: RESTART_LOST }] });
    expect(after.pendingInput(running.taskId)).toBeUndefined();
    expect(await after.getTaskResult(done.taskId)).toEqual({ content: [{ type: 'text', text: 'ok' }] });
    expect(await after.getTask(expired.taskId)).toBeNull();
    expect((await after.createTask({}, 4, call('running'))).taskId).toBe(running.taskId);
    expect((await readdir(files)).sort()).toEqual([running.taskId, done.taskId].map((id) => `${id}.json`).sort());
    expect(JSON.parse(await readFile(path.join(files, `${running.taskId}.json`), 'utf8'))).toMatchObject({ task: { status: 'failed' } });
  });
});
