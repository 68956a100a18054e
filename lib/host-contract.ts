/**
 * The mcp-fleet host contract: the seven tools an agent host offers, their arguments and
 * structured results, and the `notifications/message` data a host streams while a prompt runs
 * (docs/host-protocol.md). The reference host registers its tools with these schemas and the
 * activities build their calls and read the answers with them, so the wire format is written
 * down once.
 *
 * The schemas describe the wire as it is: the JSON schemas a host publishes from them are
 * pinned by every server check (a change is audited as `server.tools_changed`), so a field is
 * not tightened here without a reason that is worth that.
 */
import { z } from 'zod';

/** The meta key with which a host names the run an input request belongs to (docs/host-protocol.md, "Input requests"). */
export const EXECUTION_META_KEY = 'io.mcp-fleet/executionId';

/**
 * The meta key of `execute_prompt` in tools/list with which a host says how agents' commands run
 * on it: `bwrap` (a sandbox each, docs/host-protocol.md "The sandbox") or `off` (unsandboxed, on
 * the host's machine as its user). The control plane shows it on the server.
 */
export const SANDBOX_META_KEY = 'io.mcp-fleet/sandbox';

/** Tools of the contract; a server lacking any of them is DEGRADED, not OFFLINE. The reference host registers exactly these. */
export const HOST_TOOLS = [
  'execute_prompt',
  'provision_agent',
  'activate_agent',
  'deactivate_agent',
  'install_tool',
  'uninstall_tool',
  'check_tool',
] as const;
export type HostTool = (typeof HOST_TOOLS)[number];

const RESERVED_TOOL_NAMES: ReadonlySet<string> = new Set(HOST_TOOLS);

/**
 * Whether `name` is a tool of the contract, in any letter case. These names are reserved: no
 * catalog entry, grant or `kind: tool` task may use them, because the contract's tools run
 * install, uninstall and version commands (and prompts) as the host's own user, and only the
 * platform calls them, with commands an ADMIN put in the catalog. Letter case does not matter so
 * that `Check_Tool` cannot stand beside `check_tool` in a list a person reads.
 */
export function isHostContractTool(name: string): boolean {
  return RESERVED_TOOL_NAMES.has(name.toLowerCase());
}

const JsonObject = z.record(z.string(), z.unknown());

// ---------------------------------------------------------------------------------------------
// Tools: arguments and structured results
// ---------------------------------------------------------------------------------------------

/** One entry of `allowedTools`: a granted tool and what the agent may run of it. */
export const AllowedTool = z.object({
  name: z.string(),
  /** Command prefixes the agent may run; empty: every command not blocked. */
  allowedCommands: z.array(z.string()).default([]),
  /** Command prefixes the agent may never run; they win over `allowedCommands`. */
  blockedCommands: z.array(z.string()).default([]),
  /**
   * The host asks the client (elicitation) before each command of this tool, and runs it only
   * when approved. Absent means false (optional rather than defaulted, so that code building
   * entries, and hosts reading them, need not name it).
   */
  requiresApproval: z.boolean().optional(),
});
export type AllowedTool = z.infer<typeof AllowedTool>;
/** An `allowedTools` entry as a host reads it (allowedToolScopes): always the object form. */
export type AllowedToolScope = AllowedTool;

/** `allowedTools` as a host reads it: every entry an object, a bare name allowing every command. */
export function allowedToolScopes(allowedTools: ExecutePromptArgs['allowedTools']): AllowedToolScope[] {
  return (allowedTools ?? []).map((entry) =>
    typeof entry === 'string' ? { name: entry, allowedCommands: [], blockedCommands: [] } : entry,
  );
}

/**
 * A run's way back to mcp-fleet (delegation, issue 22): the fleet's MCP endpoint and a run token
 * (`Authorization: Bearer <token>`) that works only while this run is live, for this run's
 * organisation and agent. With it the agent lists its direct subordinates (`list_subordinates`)
 * and hands them work (`delegate`); see docs/host-protocol.md. Sent only to runs whose agent has
 * subordinates; a host that ignores it keeps working. A secret: hosts must not log or store it.
 */
export const FleetAccess = z.object({
  /** The MCP endpoint (Streamable HTTP), e.g. `http://api.example:3000/mcp`. */
  url: z.string(),
  /** The run token, `mcpr_…`. */
  token: z.string(),
  /** ISO time after which the token is refused even if the run still goes on. */
  expiresAt: z.string(),
});
export type FleetAccess = z.infer<typeof FleetAccess>;

/**
 * The `_meta` key of a `delegate` tools/call naming that call within its run (the reference host
 * sends its engine's tool-call id): the fleet starts one child per call id, so the same call sent
 * again (the run tried again after a lost worker) gets the same child, and two calls alike get two.
 */
export const DELEGATION_CALL_META = 'io.mcp-fleet/call-id';

export const ExecutePromptArgs = z.object({
  /** The same on every attempt of a run: a repeated id is a retry after a lost worker. */
  executionId: z.string(),
  agentId: z.string(),
  agentName: z.string(),
  prompt: z.string(),
  context: JsonObject.optional(),
  /**
   * The tools the agent may use, with the commands it may run of each (lib/tool-commands.ts).
   * A bare name (what hosts received before) means every command of that tool. Absent: none.
   */
  allowedTools: z.array(z.union([z.string(), AllowedTool])).optional(),
  /** A JSON schema the answer's `data` must match. */
  responseSchema: JsonObject.optional(),
  /** The fleet's MCP endpoint and this run's token, when the agent has subordinates (delegation). */
  fleet: FleetAccess.optional(),
});
export type ExecutePromptArgs = z.infer<typeof ExecutePromptArgs>;

export const ExecutePromptResult = z.object({
  success: z.boolean(),
  output: z.string(),
  tokensUsed: z.number().int().nonnegative().optional(),
  data: z.unknown().optional(),
});
export type ExecutePromptResult = z.infer<typeof ExecutePromptResult>;

export const ProvisionAgentArgs = z.object({
  agentId: z.string(),
  name: z.string(),
  // A plain string on the wire (MASTER, SUPERVISOR or WORKER today): hosts keep working if roles grow.
  role: z.string(),
  capabilities: z.array(z.string()),
  supervisorId: z.string().optional(),
});
export type ProvisionAgentArgs = z.infer<typeof ProvisionAgentArgs>;

export const ProvisionAgentResult = z.object({ provisioned: z.literal(true), agentId: z.string() });
export type ProvisionAgentResult = z.infer<typeof ProvisionAgentResult>;

/** Arguments of activate_agent and deactivate_agent. */
export const AgentIdArgs = z.object({ agentId: z.string() });
export type AgentIdArgs = z.infer<typeof AgentIdArgs>;

/** Arguments of deactivate_agent: `removeWorkspace` (default false) also deletes the agent's workspace on the host. */
export const DeactivateAgentArgs = AgentIdArgs.extend({ removeWorkspace: z.boolean().optional() });
export type DeactivateAgentArgs = z.infer<typeof DeactivateAgentArgs>;

/** Result of activate_agent and deactivate_agent. */
export const AgentActiveResult = z.object({ active: z.boolean() });
export type AgentActiveResult = z.infer<typeof AgentActiveResult>;

export const InstallToolArgs = z.object({
  name: z.string(),
  installCommand: z.string(),
  versionCommand: z.string().optional(),
  versionRegex: z.string().optional(),
});
export type InstallToolArgs = z.infer<typeof InstallToolArgs>;

export const InstallToolResult = z.object({ installed: z.boolean(), version: z.string().optional(), log: z.string() });
export type InstallToolResult = z.infer<typeof InstallToolResult>;

export const UninstallToolArgs = z.object({ name: z.string(), uninstallCommand: z.string() });
export type UninstallToolArgs = z.infer<typeof UninstallToolArgs>;

export const UninstallToolResult = z.object({ uninstalled: z.boolean(), log: z.string() });
export type UninstallToolResult = z.infer<typeof UninstallToolResult>;

export const CheckToolArgs = z.object({ name: z.string(), versionCommand: z.string(), versionRegex: z.string().optional() });
export type CheckToolArgs = z.infer<typeof CheckToolArgs>;

export const CheckToolResult = z.object({ installed: z.boolean(), version: z.string().optional(), log: z.string().optional() });
export type CheckToolResult = z.infer<typeof CheckToolResult>;

/** Each tool's arguments and structured result, in one table the host and the client both read. */
export const HOST_CONTRACT = {
  execute_prompt: { args: ExecutePromptArgs, result: ExecutePromptResult },
  provision_agent: { args: ProvisionAgentArgs, result: ProvisionAgentResult },
  activate_agent: { args: AgentIdArgs, result: AgentActiveResult },
  deactivate_agent: { args: DeactivateAgentArgs, result: AgentActiveResult },
  install_tool: { args: InstallToolArgs, result: InstallToolResult },
  uninstall_tool: { args: UninstallToolArgs, result: UninstallToolResult },
  check_tool: { args: CheckToolArgs, result: CheckToolResult },
} as const satisfies Record<HostTool, { args: z.ZodObject; result: z.ZodObject }>;

export type HostToolArgs<T extends HostTool> = z.infer<(typeof HOST_CONTRACT)[T]['args']>;
export type HostToolResult<T extends HostTool> = z.infer<(typeof HOST_CONTRACT)[T]['result']>;

/** A `tools/call` request for a contract tool, its arguments checked against the contract when compiled. */
export function hostToolCall<T extends HostTool>(name: T, args: HostToolArgs<T>): { name: T; arguments: HostToolArgs<T> } {
  return { name, arguments: args };
}

/**
 * Reads `structuredContent` of an execute_prompt answer. Only what has the contract's type is
 * kept: a host that declares no outputSchema is not checked by the SDK and may send anything,
 * and one wrong field should not turn a run the host reports done into a failure.
 */
export function parsePromptResult(structuredContent: unknown): Partial<ExecutePromptResult> {
  return PromptResultReading.parse(structuredContent);
}

const PromptResultReading = z
  .object({
    success: ExecutePromptResult.shape.success.optional().catch(undefined),
    output: ExecutePromptResult.shape.output.optional().catch(undefined),
    tokensUsed: ExecutePromptResult.shape.tokensUsed.catch(undefined),
    data: ExecutePromptResult.shape.data,
  })
  .catch({});

// ---------------------------------------------------------------------------------------------
// notifications/message: what an agent reports while it runs
// ---------------------------------------------------------------------------------------------

export const TodoStatus = z.enum(['pending', 'in_progress', 'completed']);
export type TodoStatus = z.infer<typeof TodoStatus>;

export const TodoItem = z.object({ id: z.string(), content: z.string(), status: TodoStatus });
export type TodoItem = z.infer<typeof TodoItem>;

// One connection carries the runs of many agents: the id is how a message finds its run.
const ForExecution = { executionId: z.string() };

/** `notifications/message` data: one of these, discriminated by `type`. */
export const HostMessage = z.discriminatedUnion('type', [
  /** A chunk of the agent's output; the chunks concatenated are the run's output. */
  z.object({ ...ForExecution, type: z.literal('output'), text: z.string() }),
  /** The whole current todo list: it replaces the previous one. */
  z.object({ ...ForExecution, type: z.literal('todo'), todos: z.array(TodoItem) }),
  z.object({ ...ForExecution, type: z.literal('tool_call'), toolCallId: z.string(), name: z.string(), arguments: JsonObject }),
  // Optional because a tool that returned nothing has nothing to put in JSON.
  z.object({ ...ForExecution, type: z.literal('tool_result'), toolCallId: z.string(), name: z.string(), result: z.unknown().optional() }),
  z.object({ ...ForExecution, type: z.literal('file_change'), path: z.string(), change: z.enum(['created', 'modified', 'deleted']) }),
]);
export type HostMessage = z.infer<typeof HostMessage>;
export type HostMessageType = HostMessage['type'];

/** A message as the agent produces it, before the host tags it with its execution. */
export type HostEvent = HostMessage extends infer M ? (M extends HostMessage ? Omit<M, 'executionId'> : never) : never;

/**
 * The message `data` carries, or undefined when it is not one the contract knows (another
 * type, a missing executionId, a field of the wrong type): such messages are dropped, not
 * errors, so a host may send more than mcp-fleet reads.
 */
export function parseHostMessage(data: unknown): HostMessage | undefined {
  const parsed = HostMessage.safeParse(data);
  return parsed.success ? parsed.data : undefined;
}
