/**
 * A run that streams fast does not hold the host's event loop: its notifications go out a
 * slice per turn, on a task's tasks/result (a backlog) as on a plain call's stream. Sending one
 * never waits for the network, so without the turns a backlog of thousands went out in one turn,
 * and on a loaded machine every timer of the process (a worker's heartbeats, in the tests that
 * run a host beside it) waited seconds for it.
 *
 * Each test counts what was sent when a turn of the event loop asked for at the start came:
 * everything, if the host never let it run.
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { ServerNotification } from '@modelcontextprotocol/sdk/types.js';
import { SENDS_PER_TURN } from './event-loop-turns';
import { hostTaskResult } from './task-result';
import { HostTaskStore } from './task-store';
import { plainIo } from './tool-serving';
import type { ToolExtra } from './tool-types';

const MESSAGES = 1000;

/** A request's context whose sends are written at once, as the SDK's are (the response buffers them). */
function requestContext(sent: unknown[]): ToolExtra {
  return {
    signal: new AbortController().signal,
    requestId: 1,
    sendNotification: async (notification: ServerNotification) => {
      sent.push(notification);
    },
    sendRequest: () => Promise.reject(new Error('no requests in this test')),
  } as unknown as ToolExtra;
}

const message = (i: number): ServerNotification => ({
  method: 'notifications/message',
  params: { level: 'info', data: { type: 'output', text: `chunk ${i}\n` } },
});

/** How many of `sent` had gone out when the next turn of the event loop came. */
function sentAtNextTurn(sent: unknown[]): () => number | undefined {
  let count: number | undefined;
  setImmediate(() => (count = sent.length));
  return () => count;
}

describe('a run streaming fast gives the event loop a turn', () => {
  it("tasks/result delivers a task's backlog a slice per turn", async () => {
    const store = new HostTaskStore();
    await store.open();
    try {
      const request = { method: 'tools/call', params: { name: 'execute_prompt', arguments: { executionId: 'e1' }, task: { ttl: 60_000 } } };
      const { taskId } = await store.createTask({ ttl: 60_000 }, 1, request);
      for (let i = 1; i <= MESSAGES; i++) await store.enqueue(taskId, message(i));
      await store.storeTaskResult(taskId, 'completed', { content: [] });

      const sent: unknown[] = [];
      const atTurn = sentAtNextTurn(sent);
      const result = await hostTaskResult(store, new McpServer({ name: 'host', version: '0' }).server, taskId, requestContext(sent), 1000);
      expect(result).toMatchObject({ content: [] });
      expect(sent).toHaveLength(MESSAGES);
      expect(atTurn()).toBe(SENDS_PER_TURN);
    } finally {
      await store.close();
    }
  });

  it("a plain call's notifications go out a slice per turn", async () => {
    const sent: unknown[] = [];
    const io = plainIo(new McpServer({ name: 'host', version: '0' }), requestContext(sent), 1000);
    const atTurn = sentAtNextTurn(sent);
    for (let i = 1; i <= MESSAGES; i++) await io.notify(message(i));
    expect(sent).toHaveLength(MESSAGES);
    expect(atTurn()).toBe(SENDS_PER_TURN);
  });
});
