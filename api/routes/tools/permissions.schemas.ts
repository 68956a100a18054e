import { z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';

/** Words separated by single spaces: `remote add`, the form every comparison reads. */
const CommandEntry = z
  .string()
  .transform((text) => text.trim().split(/\s+/).join(' '))
  .pipe(z.string().min(1, 'required').max(200, 'at most 200 characters'))
  .openapi({
    type: 'string',
    pattern: NON_BLANK_TEXT_PATTERN,
    description:
      'A command of the tool, without its name (`status`, `remote add`): it covers every command starting with these words. For git, docker, kubectl, helm and terraform the command is the subcommand after the global options, and an allowed entry starting with `-` names an option instead (`-C`, `-c user.name=bot`, `--upload-pack`): see docs/tools.md, Command scopes',
  });
const CommandList = z
  .array(CommandEntry)
  .max(100)
  .transform((entries) => [...new Set(entries)]);

const PermissionIn = z.strictObject({
  toolId: z.uuid(),
  canUse: z.boolean(),
  allowedCommands: CommandList.optional().openapi({
    description:
      'Only these commands (and what they start); empty or absent (or only option entries): every command not blocked. Options, aliases and subcommands that change what runs or where run only when named here',
  }),
  blockedCommands: CommandList.optional().openapi({
    description: 'Never these commands (nor what they start); they win over allowedCommands',
  }),
  requiresApproval: z.boolean().optional().openapi({
    description:
      "The host asks a person (an input request) before each command of this tool and runs it only when approved; default false. A subordinate must keep its supervisor's",
  }),
});

export const SetPermissionsBody = z
  .strictObject({
    permissions: z
      .array(PermissionIn)
      .max(500)
      .openapi({ description: 'The whole set: each toolId at most once; a tool left out is no longer granted' })
      .superRefine((entries, ctx) => {
        const seen = new Set<string>();
        entries.forEach((entry, i) => {
          if (seen.has(entry.toolId)) ctx.addIssue({ code: 'custom', path: [i, 'toolId'], message: 'this tool is already in the list' });
          seen.add(entry.toolId);
        });
      }),
  })
  .openapi('SetAgentToolPermissionsRequest');

export const AgentParams = z.strictObject({ agentId: z.uuid('must be a uuid') });

const PermissionOut = z.object({
  toolId: z.uuid(),
  tool: z.object({ id: z.uuid(), name: z.string(), displayName: z.string(), category: z.string(), builtin: z.boolean() }),
  canUse: z.boolean(),
  allowedCommands: z.array(z.string()),
  blockedCommands: z.array(z.string()),
  requiresApproval: z.boolean(),
  state: z.enum(['active', 'pending_install', 'not_granted']).openapi({
    description:
      'active: sent to the host and usable; pending_install: granted, waiting for the tool to be installed on the agent’s server; not_granted: canUse is false',
  }),
  grantedById: z.uuid().nullable(),
  updatedAt: z.string(),
});

export const AgentPermissionsOut = z
  .object({
    agentId: z.uuid(),
    supervisorId: z.uuid().nullable(),
    boundedBySupervisor: z.boolean().openapi({
      description: 'Whether the supervisor’s permissions bound this agent’s (false for a MASTER or an agent without supervisor)',
    }),
    permissions: z.array(PermissionOut),
  })
  .openapi('AgentToolPermissions');

const Scope = z.object({ allowedCommands: z.array(z.string()), blockedCommands: z.array(z.string()) });

export const SetPermissionsOut = AgentPermissionsOut.extend({
  trimmed: z
    .array(
      z.object({
        agentId: z.uuid(),
        name: z.string(),
        removed: z.array(z.string()),
        narrowed: z.array(z.object({ tool: z.string(), from: Scope, to: Scope })),
        approvalRequired: z.array(z.string()),
      }),
    )
    .openapi({
      description:
        'Subordinates whose permissions shrank with this change (tools removed, commands narrowed, approval now required), each audited as agent.permissions.trimmed',
    }),
}).openapi('AgentToolPermissionsChange');
