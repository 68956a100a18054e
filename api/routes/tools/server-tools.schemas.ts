import { z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { pageQuery } from '../../pagination';
import { VERSION_PATTERN } from '../../../domain/tools/host-install';

export const ToolState = z.enum(['NOT_INSTALLED', 'INSTALLING', 'INSTALLED', 'REMOVING', 'FAILED']);

export const ServerParams = z.strictObject({ serverId: z.uuid('must be a uuid') });
export const ServerToolParams = z.strictObject({ serverId: z.uuid('must be a uuid'), toolId: z.uuid('must be a uuid') });

export const ListServerToolsQuery = z.strictObject({
  ...pageQuery,
  status: ToolState.optional().openapi({
    description: 'Only tools in this state on the server (NOT_INSTALLED: no install recorded, or uninstalled)',
  }),
  category: z
    .string()
    .trim()
    .min(1)
    .max(32)
    .optional()
    .openapi({ description: 'Only catalog entries of this category', pattern: NON_BLANK_TEXT_PATTERN }),
});

export const InstallBody = z
  .strictObject({
    toolId: z.uuid('must be a uuid').optional().openapi({ description: 'The catalog entry to install' }),
    name: z
      .string()
      .trim()
      .min(1, 'required')
      .max(64, 'at most 64 characters')
      .optional()
      .openapi({ description: 'Or its name', pattern: NON_BLANK_TEXT_PATTERN }),
    version: z
      .string()
      .regex(VERSION_PATTERN, 'must be a version such as 1.2.3 (letters, digits and . + ~ _ -, at most 64)')
      .optional()
      .openapi({
        description:
          'The version to install, for entries whose install command has a {version} placeholder; verified after the install (1.2 accepts 1.2.x)',
      }),
  })
  .superRefine((body, ctx) => {
    if ((body.toolId === undefined) === (body.name === undefined))
      ctx.addIssue({ code: 'custom', path: ['toolId'], message: 'give either toolId or name' });
  })
  .openapi('InstallToolRequest', { oneOf: [{ required: ['toolId'] }, { required: ['name'] }] });

export const ToolChangeStartedOut = z
  .object({ workflowId: z.string(), serverId: z.uuid(), toolId: z.uuid(), action: z.enum(['install', 'uninstall', 'cancel']) })
  .openapi('ToolChangeStarted');

export const ServerToolOut = z
  .object({
    tool: z.object({ id: z.uuid(), name: z.string(), displayName: z.string(), category: z.string(), builtin: z.boolean() }),
    status: ToolState,
    installedVersion: z.string().nullable(),
    installedAt: z.string().nullable(),
    checkedAt: z
      .string()
      .nullable()
      .openapi({ description: 'When the server last confirmed the installed version (install, uninstall or drift check)' }),
    lastError: z
      .string()
      .nullable()
      .openapi({ description: 'Why the last change FAILED, or why the tool vanished (NOT_INSTALLED after a drift check)' }),
    logTail: z.string().nullable().openapi({ description: "The end of the server's log of the last install or uninstall" }),
    workflowId: z.string().nullable().openapi({ description: 'The last install or uninstall workflow' }),
  })
  .openapi('ServerTool');

export const ServerToolPage = z
  .object({
    server: z.object({ id: z.uuid(), name: z.string(), status: z.string() }),
    items: z.array(ServerToolOut),
    nextCursor: z.string().nullable(),
    serverTools: z
      .object({ names: z.array(z.string()), total: z.number().int(), checkedAt: z.string().nullable() })
      .openapi({ description: "What the server's own tools/list offered at its last check (on the first page only; at most 1000 names)" })
      .nullable(),
  })
  .openapi('ServerToolPage');
