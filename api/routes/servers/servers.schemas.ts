import { z } from '../../zod';
import { NON_BLANK_TEXT_PATTERN, TOKEN_PATTERN } from '../../validate';
import { pageQuery, pageSchema } from '../../pagination';

const ServerName = z
  .string()
  .trim()
  .min(1, 'required')
  .max(100, 'at most 100 characters')
  .regex(/^[\p{L}\p{N}][\p{L}\p{N} ._-]*$/u, 'letters, digits, spaces, dots, dashes and underscores')
  // Spelled out: zod-to-openapi would publish the `u` flag inside the pattern (`...$/u`).
  .openapi({ pattern: '^[\\p{L}\\p{N}][\\p{L}\\p{N} ._-]*$' });
const Url = z.string().trim().min(1, 'required').max(2048, 'at most 2048 characters').openapi({
  example: 'https://mcp.example.com/mcp',
  pattern: NON_BLANK_TEXT_PATTERN,
  description: 'An http(s) URL the URL policy allows (docs/servers.md: no cloud metadata, link-local or loopback address unless allowed)',
});
const MasterToken = z
  .string()
  .min(1, 'required')
  .max(4096, 'at most 4096 characters')
  .refine((t) => t.trim() === t && !/\s/.test(t), 'must not contain whitespace')
  .openapi({
    description: 'Bearer token mcp-fleet presents to the server, without white space. Write-only: never returned.',
    writeOnly: true,
    pattern: TOKEN_PATTERN,
  });
const Transport = z.enum(['streamable-http', 'sse']);
const Description = z.string().max(2000, 'at most 2000 characters');
const Status = z.enum(['ONLINE', 'OFFLINE', 'DEGRADED', 'UNKNOWN']);

export const CreateServerBody = z
  .strictObject({
    name: ServerName,
    url: Url,
    masterToken: MasterToken,
    transport: Transport.default('streamable-http'),
    description: Description.optional(),
  })
  .openapi('CreateServerRequest');

export const UpdateServerBody = z
  .strictObject({
    name: ServerName.optional(),
    url: Url.optional(),
    masterToken: MasterToken.optional(),
    transport: Transport.optional(),
    description: Description.nullable().optional(),
  })
  .refine((b) => Object.values(b).some((v) => v !== undefined), { message: 'give at least one field' })
  .openapi('UpdateServerRequest', { minProperties: 1 });

export const ListServersQuery = z.strictObject({
  ...pageQuery,
  status: Status.optional(),
  name: z
    .string()
    .trim()
    .min(1)
    .max(100)
    .optional()
    .openapi({ description: 'Case-insensitive substring of the name', pattern: NON_BLANK_TEXT_PATTERN }),
});

export const DeleteServerQuery = z.strictObject({
  force: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: 'Delete even with agents (they are deactivated, then removed with the server)' }),
});

export const ServerOut = z
  .object({
    id: z.uuid(),
    name: z.string(),
    description: z.string().nullable(),
    url: z.string(),
    transport: Transport,
    masterToken: z.object({ set: z.boolean(), last4: z.string().nullable() }),
    status: Status,
    lastCheckAt: z.string().nullable(),
    lastLatencyMs: z.number().nullable(),
    lastError: z.string().nullable(),
    serverInfo: z.record(z.string(), z.unknown()).nullable(),
    protocolVersion: z.string().nullable(),
    tools: z.array(z.string()),
    sandbox: z.string().nullable().openapi({
      description:
        "How agents' commands run on the host, as its tools/list said at the last check: `bwrap` (each in a sandbox), `off` (unsandboxed, on the host's machine as its user: show it as an unsandboxed host), null when the host does not say",
      example: 'bwrap',
    }),
    toolsHash: z.string().nullable(),
    lastToolsChange: z
      .object({ at: z.string(), added: z.array(z.string()), removed: z.array(z.string()), changed: z.array(z.string()) })
      .nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('McpServer');

export const ServerPage = pageSchema(ServerOut).openapi('McpServerPage');

export const CheckResultOut = z
  .object({
    serverId: z.uuid(),
    ok: z.boolean(),
    status: z.enum(['ONLINE', 'DEGRADED', 'OFFLINE']),
    latencyMs: z.number().nullable(),
    serverInfo: z.object({ name: z.string(), version: z.string() }).nullable(),
    protocolVersion: z.string().nullable(),
    transport: Transport.nullable(),
    tools: z.array(z.string()),
    missingHostTools: z.array(z.string()),
    error: z.string().optional(),
    toolsChanged: z.object({ added: z.array(z.string()), removed: z.array(z.string()), changed: z.array(z.string()) }).optional(),
    checkedAt: z.string(),
  })
  .openapi('ServerCheckResult');
