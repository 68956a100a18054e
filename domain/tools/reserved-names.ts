import { isHostContractTool } from '../../lib/host-contract';

/**
 * The tools of the host contract (`execute_prompt`, `install_tool`, `check_tool`, ...) are the
 * platform's own: they run prompts and the catalog's install, uninstall and version commands as
 * the host's user, and mcp-fleet calls them only with what an ADMIN put in the catalog. A
 * catalog entry, a grant or a `kind: tool` task of that name would let whoever may create one
 * call them with commands of their own, so each of those refuses the names, and so does the
 * check before a direct tool call (for rows written before the names were reserved).
 *
 * The code of every such refusal: the one `kind: tool` tasks have answered since they exist.
 */
export const PLATFORM_TOOL_CODE = 'platform_tool';

/** Why `name` cannot be `what` ("a catalog entry", "granted", ...), or undefined when it can. */
export function platformToolProblem(name: string, what: string): string | undefined {
  if (!isHostContractTool(name)) return undefined;
  return `${name} is a tool of the host contract, called only by mcp-fleet itself; it cannot be ${what}`;
}
