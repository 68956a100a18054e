/**
 * The stage scripts/record-histories.ts sets up once and hands to each recording scenario (the
 * stack, the admin, the recorder, hosts and agents on demand), and the calls on runs that the
 * scenarios share.
 */
import type { AgentHost } from '../../host/server';
import type { Account, Http } from '../../test/api';
import { waitFor } from '../../test/fleet';
import type { TestContext } from '../../test/harness';
import type { Recorder } from './recorder';

const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED'];

/** What every scenario records with: the running stack, an admin, the recorder, and hosts with agents on demand. */
export interface Stage {
  ctx: TestContext;
  http: Http;
  admin: Account;
  rec: Recorder;
  hosts: AgentHost[];
  /** Short prompts: each progress signal is a history event, and the histories are committed. */
  agent(options?: {
    tasks?: boolean;
    maxConcurrency?: number;
    allowCommands?: boolean;
  }): Promise<{ id: string; serverId: string; host: AgentHost }>;
}

/** The admin's calls on runs that the scenarios repeat: start one, wait for a status or its end, cancel it, answer its question. */
export function api(stage: Pick<Stage, 'http' | 'admin'>) {
  const { http, admin } = stage;
  const auth = { Authorization: `Bearer ${admin.accessToken}` };
  const show = async (id: string) =>
    (await http.get(`/api/executions/${id}`).set(auth).expect(200)).body as { status: string; error?: string };
  return {
    auth,
    async execute(agentId: string, prompt: string, extra: Record<string, unknown> = {}): Promise<string> {
      return (
        await http
          .post(`/api/agents/${agentId}/execute`)
          .set(auth)
          .send({ prompt, ...extra })
          .expect(202)
      ).body.executionId as string;
    },
    status: (id: string, status: string) => waitFor(async () => (await show(id)).status === status, 120_000, 100),
    ended: (id: string) => waitFor(async () => FINAL.includes((await show(id)).status), 120_000, 100),
    cancel: (id: string) => http.post(`/api/executions/${id}/cancel`).set(auth).expect(202),
    answer: (id: string) =>
      http
        .post(`/api/executions/${id}/input`)
        .set(auth)
        .send({ action: 'accept', content: { answer: 'yes' } })
        .expect(200),
  };
}
