import type { EntityManager } from '@mikro-orm/postgresql';
import { AssignmentMode, TaskKind, type Task } from '../../entities';
import { RUNNABLE_STATUSES } from '../runs/slots';
import { agentProblem, toolProblems } from './task-rules';

/**
 * Which agent runs a task's occurrence, and why, in words a person reads on the execution:
 *
 * - MANUAL: the task's agent, if it still exists and takes runs;
 * - AUTO: an agent that takes runs (ACTIVE, or BUSY with free slots or not) on an ONLINE
 *   server, with the fewest running + queued executions; ties go to the server with the lowest
 *   last check latency, then to the lowest agent id;
 * - BY_CAPABILITY: the same among the agents holding every required capability.
 *
 * For `kind: tool`, an agent whose server's pinned tool list lacks the tool is not a candidate.
 */

export type Assignment = { ok: true; agentId: string; reason: string } | { ok: false; reason: string };

interface Candidate {
  id: string;
  name: string;
  server_name: string;
  server_status: string;
  last_latency_ms: number | null;
  running: number;
  queued: number;
}

function load(c: Candidate): string {
  const latency = c.last_latency_ms === null ? 'latency unknown' : `${c.last_latency_ms} ms`;
  return `${c.running} running, ${c.queued} queued, ${c.server_status} ${latency}`;
}

async function candidates(em: EntityManager, task: Task, only?: string): Promise<Candidate[]> {
  const where: string[] = ['a.organization_id = ?', `a.status in (${RUNNABLE_STATUSES.map(() => '?').join(', ')})`];
  const params: unknown[] = [task.organization.id, ...RUNNABLE_STATUSES];
  if (only) {
    where.push('a.id = ?');
    params.push(only);
  } else {
    where.push("s.status = 'ONLINE'");
    if (task.assignmentMode === AssignmentMode.BY_CAPABILITY) {
      where.push('a.capabilities @> ?::text[]');
      params.push(`{${task.requiredCapabilities.map((c) => `"${c.replace(/["\\]/g, '\\$&')}"`).join(',')}}`);
    }
    if (task.kind === TaskKind.TOOL && task.toolName) {
      where.push('(s.tools_snapshot is null or s.tools_snapshot @> ?::jsonb)');
      params.push(JSON.stringify([{ name: task.toolName }]));
    }
  }
  const rows = await em.execute<Candidate[]>(
    `select * from (
       select a.id, a.name, s.name as server_name, s.status as server_status, s.last_latency_ms,
         (select count(*) from executions e where e.agent_id = a.id and e.status in ('RUNNING', 'WAITING_INPUT'))::int as running,
         (select count(*) from executions e where e.agent_id = a.id and e.status = 'QUEUED')::int as queued
       from agents a join mcp_servers s on s.id = a.server_id
       where ${where.join(' and ')}
     ) c order by running + queued, last_latency_ms asc nulls last, id`,
    params,
  );
  return rows;
}

function noneEligible(task: Task): string {
  const parts = ['no ACTIVE agent on an ONLINE server'];
  if (task.assignmentMode === AssignmentMode.BY_CAPABILITY)
    parts.push(`holds every required capability (${task.requiredCapabilities.join(', ')})`);
  if (task.kind === TaskKind.TOOL && task.toolName) parts.push(`offers the tool ${task.toolName}`);
  return `no eligible agent: ${parts.join(' that ')}`;
}

/** The agent for the next run of `task` (its `agent` and `agent.server` loaded), or why there is none. */
export async function resolveAgent(em: EntityManager, task: Task): Promise<Assignment> {
  if (task.assignmentMode === AssignmentMode.MANUAL) {
    const problem = agentProblem(task);
    if (problem) return { ok: false, reason: problem };
    const agent = task.agent!;
    if (task.kind === TaskKind.TOOL && task.toolName) {
      const [problem] = toolProblems(task.toolName, task.toolArguments, agent.server);
      if (problem) return { ok: false, reason: problem.message };
    }
    const [row] = await candidates(em, task, agent.id);
    return { ok: true, agentId: agent.id, reason: `MANUAL: the task's agent ${agent.name}${row ? ` (${load(row)})` : ''}` };
  }
  const rows = await candidates(em, task);
  const chosen = rows[0];
  if (!chosen) return { ok: false, reason: noneEligible(task) };
  const what = task.assignmentMode === AssignmentMode.BY_CAPABILITY ? ` with ${task.requiredCapabilities.join(', ')}` : '';
  return {
    ok: true,
    agentId: chosen.id,
    reason: `${task.assignmentMode}: ${rows.length} candidate${rows.length === 1 ? '' : 's'}${what}; chose ${chosen.name} on ${chosen.server_name}: ${load(chosen)}`,
  };
}
