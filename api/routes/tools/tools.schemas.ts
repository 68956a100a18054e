import { z } from '../../zod';
import { HOST_TOOLS } from '../../../lib/host-contract';
import { NON_BLANK_TEXT_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';

export const ToolName = z
  .string()
  .trim()
  .min(1, 'required')
  .max(64, 'at most 64 characters')
  // The program a host runs, or the name of a tool a server lists itself (MCP tool names are case-sensitive).
  .regex(/^[A-Za-z0-9][A-Za-z0-9._+-]*$/, 'letters, digits and . _ + -, starting with a letter or digit (the name a host runs it by)')
  .openapi({
    description: `The name a host runs the tool by. Never a tool of the host contract (${HOST_TOOLS.join(', ')}, in any letter case): 400 platform_tool`,
  });
const Category = z
  .string()
  .trim()
  .min(1, 'required')
  .max(32, 'at most 32 characters')
  .regex(/^[a-z0-9][a-z0-9-]*$/, 'lower-case letters, digits and dashes');
const DisplayName = z.string().trim().min(1).max(120).openapi({ pattern: NON_BLANK_TEXT_PATTERN });
const Description = z.string().max(4000);
const Command = z.string().trim().min(1, 'required').max(4000, 'at most 4000 characters').openapi({ pattern: NON_BLANK_TEXT_PATTERN });
/** Compiled here, so a pattern a host could not use is a 400 naming the field, not a failed install. */
const VersionRegex = z
  .string()
  .min(1)
  .max(500)
  .superRefine((pattern, ctx) => {
    try {
      new RegExp(pattern);
    } catch (error) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid regular expression: ${error instanceof Error ? error.message : String(error)}`,
      });
    }
  })
  .openapi({
    description: 'A JavaScript regular expression; its first group (or whole match) in the version command’s output is the version',
  });
const Homepage = z.url({ protocol: /^https?$/, error: 'an http(s) URL' }).max(500);

const toolFields = {
  name: ToolName,
  displayName: DisplayName.optional(),
  description: Description.optional(),
  category: Category,
  installCommand: Command,
  uninstallCommand: Command,
  versionCommand: Command,
  versionRegex: VersionRegex.optional(),
  homepage: Homepage.optional(),
};

export const CreateToolBody = z.strictObject(toolFields).openapi('CreateToolRequest');

export const UpdateToolBody = z
  .strictObject({
    name: ToolName.optional(),
    displayName: DisplayName.optional(),
    description: Description.nullable().optional(),
    category: Category.optional(),
    installCommand: Command.optional(),
    uninstallCommand: Command.optional(),
    versionCommand: Command.optional(),
    versionRegex: VersionRegex.nullable().optional(),
    homepage: Homepage.nullable().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'give at least one field' })
  .openapi('UpdateToolRequest', { minProperties: 1 });

export const ListToolsQuery = z.strictObject({
  ...pageQuery,
  category: Category.optional(),
  q: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .optional()
    .openapi({ description: 'Case-insensitive match on name, display name or description', pattern: NON_BLANK_TEXT_PATTERN }),
});

export const ToolOut = z
  .object({
    id: z.uuid(),
    name: z.string(),
    displayName: z.string(),
    description: z.string().nullable(),
    category: z.string(),
    installCommand: z.string(),
    uninstallCommand: z.string(),
    versionCommand: z.string(),
    versionRegex: z.string().nullable(),
    homepage: z.string().nullable(),
    builtin: z.boolean().openapi({ description: 'A built-in entry: every organisation sees it, nobody edits it' }),
    organizationId: z.uuid().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('ToolDefinition');

export const ToolPage = pageSchema(ToolOut).openapi('ToolDefinitionPage');
