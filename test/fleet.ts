import { randomUUID } from 'node:crypto';
import { startAgentHost, type AgentHost, type AgentHostOptions } from '../host/server';
import type { Response } from 'superagent';
import type { Account, Http } from './api';

/** Registers a real reference host as a server of the account's organisation. */
export async function registerHost(
  http: Http,
  account: Account,
  options: Partial<AgentHostOptions> = {},
): Promise<{ host: AgentHost; serverId: string }> {
  const host = await startAgentHost({ token: `host-token-${randomUUID()}`, stepDelayMs: 5, ...options });
  const res = await http
    .post('/api/servers')
    .auth(account.accessToken, { type: 'bearer' })
    .send({ name: `host-${randomUUID().slice(0, 8)}`, url: host.url, masterToken: host.token });
  if (res.status !== 201) throw new Error(`server registration failed: ${res.status} ${JSON.stringify(res.body)}`);
  return { host, serverId: res.body.id };
}

/** A reference host registered as a server of `account`, with one validated agent; the host joins `hosts`, for the suite to close. */
export async function hostWithAgent(http: Http, account: Account, hosts: AgentHost[], options: Partial<AgentHostOptions> = {}) {
  const registered = await registerHost(http, account, options);
  hosts.push(registered.host);
  const agent = await activeAgent(http, account, registered.serverId);
  return { ...registered, agent };
}

/** Creates an agent and validates it (through the agentProvision workflow): ACTIVE. */
export async function activeAgent(
  http: Http,
  account: Account,
  serverId: string,
  body: Record<string, unknown> = {},
): Promise<{ id: string; name: string }> {
  const created = await http
    .post('/api/agents')
    .auth(account.accessToken, { type: 'bearer' })
    .send({ serverId, name: `agent-${randomUUID().slice(0, 8)}`, ...body });
  if (created.status !== 201) throw new Error(`agent creation failed: ${created.status} ${JSON.stringify(created.body)}`);
  const validated = await http.post(`/api/agents/${created.body.id}/validate`).auth(account.accessToken, { type: 'bearer' });
  if (validated.status !== 200) throw new Error(`validation failed: ${validated.status} ${JSON.stringify(validated.body)}`);
  return { id: created.body.id, name: created.body.name };
}

/**
 * A MASTER with two WORKERs under it (delegation tests), each ACTIVE with room for 5 runs;
 * `names` names the three (master first), else they get random names.
 */
export async function delegationTree(
  http: Http,
  account: Account,
  serverId: string,
  names: [string, string, string] | undefined = undefined,
): Promise<{ master: { id: string; name: string }; workers: { id: string; name: string }[] }> {
  const named = (i: number) => (names ? { name: names[i] } : {});
  const master = await activeAgent(http, account, serverId, { ...named(0), role: 'MASTER', maxConcurrency: 5 });
  const workers = [
    await activeAgent(http, account, serverId, { ...named(1), supervisorId: master.id, maxConcurrency: 5 }),
    await activeAgent(http, account, serverId, { ...named(2), supervisorId: master.id, maxConcurrency: 5 }),
  ];
  return { master, workers };
}

/**
 * Polls `probe` until it gives a value. `timeoutMs` is a ceiling for a loaded CI machine (2
 * cores, load 8 and more), not an expectation: a condition met on an idle machine in
 * milliseconds may take seconds there.
 */
export async function waitFor<T>(probe: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface SseEvent {
  id: string;
  event: string;
  data: Record<string, unknown>;
}

/** Parses a complete SSE body. */
export function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .map((block) => block.split('\n').filter((l) => l && !l.startsWith(':')))
    .filter((lines) => lines.length)
    .map((lines) => {
      const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2) ?? '';
      return { id: field('id'), event: field('event'), data: JSON.parse(field('data') || '{}') as Record<string, unknown> };
    });
}

/** supertest parser that keeps an SSE response as text (it ends when the stream ends). */
export function sseText(response: Response, done: (error: Error | null, body: string) => void): void {
  const res = response as unknown as NodeJS.ReadableStream;
  let text = '';
  res.on('data', (chunk: Buffer) => (text += chunk.toString()));
  res.on('end', () => done(null, text));
}
