import { defineSearchAttributeKey } from '@temporalio/common';

/**
 * Typed search attributes carried by every workflow, so operators can filter runs in the Web
 * UI. Lives here (no Node imports) so workflow code can upsert them too.
 */
export const SearchAttributes = {
  OrganizationId: defineSearchAttributeKey('OrganizationId', 'KEYWORD'),
  AgentId: defineSearchAttributeKey('AgentId', 'KEYWORD'),
  ServerId: defineSearchAttributeKey('ServerId', 'KEYWORD'),
  TaskId: defineSearchAttributeKey('TaskId', 'KEYWORD'),
  ExecutionKind: defineSearchAttributeKey('ExecutionKind', 'KEYWORD'),
  /**
   * Where a run is, as mcp-fleet records it (QUEUED, RUNNING, WAITING_INPUT, then its final
   * status), kept by `agentExecution` and set by `taskRun` when it ends. Not `ExecutionStatus`:
   * that name is Temporal's own (Running, Completed, Failed, …), reserved by the server.
   */
  RunStatus: defineSearchAttributeKey('RunStatus', 'KEYWORD'),
} as const;

export const SEARCH_ATTRIBUTE_NAMES = Object.keys(SearchAttributes) as (keyof typeof SearchAttributes)[];
