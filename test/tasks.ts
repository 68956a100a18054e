import type { Account, Http } from './api';
import { waitFor } from './fleet';

/** Test helpers for tasks: create through the API, follow runs until they end. */

export const FINAL = ['COMPLETED', 'FAILED', 'CANCELLED', 'TIMED_OUT', 'SKIPPED'];

export type Run = Record<string, unknown> & {
  id: string;
  status: string;
  error: string | null;
  trigger: string;
  agentId: string | null;
  retryOfId: string | null;
  assignmentReason: string | null;
  scheduledFor: string | null;
};

export function taskApi(http: Http, account: Account) {
  const auth = { Authorization: `Bearer ${account.accessToken}` };
  return {
    auth,
    async create(body: Record<string, unknown>, status = 201) {
      const res = await http
        .post('/api/tasks')
        .set(auth)
        .send({ title: 'a task', ...body });
      if (res.status !== status) throw new Error(`create task: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body as Record<string, unknown> & { id: string };
    },
    async run(taskId: string): Promise<string> {
      const res = await http.post(`/api/tasks/${taskId}/run`).set(auth);
      if (res.status !== 202) throw new Error(`run task: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.executionId as string;
    },
    async execution(id: string): Promise<Run | undefined> {
      const res = await http.get(`/api/executions/${id}`).set(auth);
      return res.status === 200 ? (res.body as Run) : undefined;
    },
    /** The run once it has ended. */
    async ended(id: string, timeoutMs = 60_000): Promise<Run> {
      return waitFor(
        async () => {
          const run = await this.execution(id);
          return run && FINAL.includes(run.status) ? run : undefined;
        },
        timeoutMs,
        100,
      );
    },
    async waitStatus(id: string, status: string, timeoutMs = 60_000): Promise<Run> {
      return waitFor(
        async () => {
          const run = await this.execution(id);
          return run?.status === status ? run : undefined;
        },
        timeoutMs,
        50,
      );
    },
    async runs(taskId: string, query: Record<string, string> = {}): Promise<Run[]> {
      const res = await http
        .get(`/api/tasks/${taskId}/executions`)
        .query({ limit: '100', ...query })
        .set(auth)
        .expect(200);
      return res.body.items as Run[];
    },
  };
}
