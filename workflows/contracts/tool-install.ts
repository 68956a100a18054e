/**
 * The contract of `toolInstall` (workflows/tool-install.workflow.ts), shared by the workflow,
 * its activities, the domain layer and the API; it imports nothing of the project.
 */

/** The workflow's type name: the name workflows/index.ts exports it under (checked there). */
export const TOOL_INSTALL_WORKFLOW = 'toolInstall';

export type ToolAction = 'install' | 'uninstall';

/**
 * One id per tool and server, for installs and uninstalls alike: while one runs, Temporal
 * refuses a second start with the same id, so a tool is never changed twice at once.
 */
export function toolInstallWorkflowId(serverId: string, toolId: string): string {
  return `tool-${serverId}-${toolId}`;
}

export interface ToolInstallOptions {
  /** The version asked for (install only); the catalog's `{version}` placeholder receives it. */
  version?: string;
}

/** What an activity needs to change a tool; ids only (the commands and the token are loaded by the activity). */
export interface ToolChangeInput {
  serverId: string;
  toolId: string;
  action: ToolAction;
  workflowId: string;
  version?: string;
}

/** How a change ended, as recorded on the tool's row (its log stays in the database, out of the history). */
export interface ToolChangeOutcome {
  status: 'INSTALLED' | 'NOT_INSTALLED' | 'FAILED';
  version?: string;
  error?: string;
  /** Nothing was sent to the server: a retry found the work already done, or the tool was already there. */
  skipped?: boolean;
  /** An install whose tool was already on the server, at a version that satisfies the request: its install command never ran. */
  alreadyInstalled?: boolean;
}

/** The workflow's signature, for typed starts and handles by type name. */
export type ToolInstallWorkflow = (
  serverId: string,
  toolId: string,
  action: ToolAction,
  options?: ToolInstallOptions,
) => Promise<ToolChangeOutcome>;

/** Type of the failure an activity throws when the server or the catalog entry is gone. */
export const TOOL_CHANGE_REFUSED = 'ToolChangeRefused';
