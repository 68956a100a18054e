import { OpenApiGeneratorV31, OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from './zod';
import { MAX_JSON_DEPTH, STORABLE_TEXT_PATTERN } from './validate';
import { DATABASE_RETRY_AFTER_SECONDS } from './middleware/database-unavailable';
import { TEMPORAL_RETRY_AFTER_SECONDS } from '../domain/errors';

export { OpenAPIRegistry };

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'validation_failed' }),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  })
  .openapi('Error');

const unavailableError = <C extends z.ZodType>(code: C) =>
  z.object({ error: z.object({ code, message: z.string(), details: z.unknown().optional() }) });

/** The body of a 503 on a route that needs PostgreSQL only (docs/operations.md, "PostgreSQL unavailable"). */
export const DatabaseUnavailableSchema = unavailableError(z.literal('database_unavailable')).openapi('DatabaseUnavailableError');

/** The body of a 503 on a route that needs Temporal too (docs/operations.md, "Temporal unavailable"). */
export const ServiceUnavailableSchema = unavailableError(z.enum(['database_unavailable', 'temporal_unavailable'])).openapi(
  'ServiceUnavailableError',
);

/**
 * The 503 of every route (ApiRouter.register): `database_unavailable` on all of them (each one
 * reads PostgreSQL, if only for the caller's session), and `temporal_unavailable` on those that
 * start, signal or cancel a workflow, wait for one, or change a schedule, saying what such a
 * refusal leaves behind (`temporal`). Both carry Retry-After.
 */
export function unavailableResponse(temporal?: string) {
  return {
    description: [
      '`database_unavailable`: PostgreSQL could not be reached; the request did not complete (keep your tokens).',
      ...(temporal ? [`\`temporal_unavailable\`: Temporal could not be reached or did not answer in time; ${temporal}.`] : []),
      'Try again after Retry-After.',
    ].join(' '),
    headers: {
      'Retry-After': {
        description: `Seconds to wait before trying again (${Math.max(DATABASE_RETRY_AFTER_SECONDS, TEMPORAL_RETRY_AFTER_SECONDS)} today)`,
        required: true,
        schema: { type: 'integer' as const, minimum: 1 },
      },
    },
    content: { 'application/json': { schema: temporal ? ServiceUnavailableSchema : DatabaseUnavailableSchema } },
  };
}

export function createRegistry(): OpenAPIRegistry {
  const registry = new OpenAPIRegistry();
  registry.register('Error', ErrorSchema);
  registry.register('DatabaseUnavailableError', DatabaseUnavailableSchema);
  registry.register('ServiceUnavailableError', ServiceUnavailableSchema);
  registry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  registerMcpEndpoint(registry);
  return registry;
}

/** One JSON-RPC 2.0 message of the MCP protocol, as a client sends it: a request (with an id) or a notification. */
const McpMessageSchema = z
  .object({
    jsonrpc: z.literal('2.0'),
    id: z.union([z.string(), z.number().int()]).optional(),
    method: z.string().openapi({ example: 'tools/call' }),
    params: z.record(z.string(), z.unknown()).optional(),
  })
  .openapi('McpMessage', {
    description: 'A JSON-RPC 2.0 request (with an id) or notification of the MCP protocol: initialize, tools/list, tools/call, ...',
    example: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'list_agents', arguments: {} } },
  });

/** What the MCP transport itself refuses (an Accept or a message it cannot take) answers: a JSON-RPC error, not the API's error shape. */
const McpTransportErrorSchema = z
  .object({
    jsonrpc: z.literal('2.0'),
    id: z.null(),
    error: z.object({ code: z.number().int(), message: z.string(), data: z.unknown().optional() }),
  })
  .openapi('McpTransportError');

/**
 * `POST /mcp` (api/mcp/mcp.router.ts) is served by the MCP SDK's transport, outside the
 * ApiRouter, so it is written into the document here: how to authenticate, its refusals, and
 * where the protocol and the tools are described.
 */
function registerMcpEndpoint(registry: OpenAPIRegistry): void {
  registry.registerComponent('securitySchemes', 'apiKeyAuth', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'mcpf_…',
    description: 'An API key (POST /api/api-keys), sent as Authorization: Bearer mcpf_…',
  });
  const refusal = (
    description: string,
    headers?: Record<string, { description: string; required: boolean; schema: { type: 'string' | 'integer'; minimum?: number } }>,
  ) => ({
    description,
    ...(headers ? { headers } : {}),
    content: { 'application/json': { schema: ErrorSchema } },
  });
  registry.registerPath({
    method: 'post',
    path: '/mcp',
    summary: "mcp-fleet's MCP endpoint (Streamable HTTP, stateless) for an API key's MCP client",
    description: [
      "mcp-fleet as an MCP server: the tools list_agents, list_servers, list_tasks, get_execution, execute_prompt, run_task, cancel_execution, list_waiting_inputs and answer_input, each doing what its REST route does with the key's role.",
      'Send `Accept: application/json, text/event-stream`. Stateless: no Mcp-Session-Id, any API instance answers; GET and DELETE answer 405.',
      'The protocol, the tools, their arguments and results, and client configurations (Claude Desktop, Claude Code, the SDK) are in docs/mcp-endpoint.md.',
    ].join(' '),
    tags: ['mcp'],
    security: [{ apiKeyAuth: [] }],
    request: {
      body: {
        required: true,
        content: { 'application/json': { schema: z.union([McpMessageSchema, z.array(McpMessageSchema).min(1)]) } },
      },
    },
    responses: {
      200: {
        description:
          "A request's answer, as an SSE stream: a tool that waits (execute_prompt) sends its progress notifications, then the JSON-RPC result. A refused tool call is a result with isError: true",
        content: { 'text/event-stream': { schema: { type: 'string' } } },
      },
      202: { description: 'Notifications only (such as notifications/initialized): accepted, no body' },
      400: {
        description:
          'A body that is not JSON (the API error shape), or not a JSON-RPC message the transport takes (a JSON-RPC error, such as -32700 Parse error)',
        content: { 'application/json': { schema: z.union([ErrorSchema, McpTransportErrorSchema]) } },
      },
      401: refusal(
        "`api_key_required` for a person's access token (JWT), `unauthorized` without a token, `invalid_api_key`, `api_key_revoked` or `api_key_expired` for a key not accepted (docs/api.md, Errors)",
        { 'WWW-Authenticate': { description: 'Bearer', required: true, schema: { type: 'string' as const } } },
      ),
      406: {
        description: 'The Accept header does not take both application/json and text/event-stream (a JSON-RPC error)',
        content: { 'application/json': { schema: McpTransportErrorSchema } },
      },
      415: {
        description: 'The body is not application/json (a JSON-RPC error)',
        content: { 'application/json': { schema: McpTransportErrorSchema } },
      },
      429: refusal('`rate_limited`: past the `mcp.user` or `mcp.ip` rule (docs/api.md, Rate limits); try again after Retry-After', {
        'Retry-After': { description: 'Seconds to wait', required: true, schema: { type: 'integer' as const, minimum: 1 } },
      }),
      503: unavailableResponse(),
      default: refusal('Error'),
    },
  });
}

/** zod's own reading of a uuid (versions 1 to 8 with the RFC variant, nil and max), which zod-to-openapi leaves at `format: uuid`. */
const UUID_PATTERN = z.uuid()._zod.def.pattern!.source;

type Node = Record<string, unknown>;

/**
 * The rules parseRequest (api/validate.ts) and zod apply to every request value, whatever its
 * route's schema says, written into the request schemas of the document, since zod-to-openapi
 * cannot see them: every string is storable (no NUL, no lone surrogate: `pattern`, unless the
 * schema has a pattern, a format or an enum of its own), a uuid is one zod takes, and the keys
 * of a free-form object are storable (`propertyNames`). Depth, and the strings inside
 * free-form values, no JSON Schema keyword can bound: the document's description says them.
 */
function writeRequestRules(document: {
  paths?: Record<string, Record<string, unknown>>;
  components?: { schemas?: Record<string, Node> };
}): void {
  const components = document.components?.schemas ?? {};
  const seen = new Set<Node>();
  const visit = (value: unknown): void => {
    if (!value || typeof value !== 'object' || seen.has(value as Node)) return;
    const node = value as Node;
    seen.add(node);
    if (typeof node.$ref === 'string') return visit(components[node.$ref.split('/').pop()!]);
    const types = [node.type].flat();
    if (types.includes('string') && node.enum === undefined && node.const === undefined && node.pattern === undefined) {
      if (node.format === 'uuid') node.pattern = UUID_PATTERN;
      else if (node.format === undefined) node.pattern = STORABLE_TEXT_PATTERN;
    }
    if (types.includes('object') && node.additionalProperties !== undefined && node.additionalProperties !== false) {
      node.propertyNames = {
        ...(node.propertyNames as Node | undefined),
        pattern: (node.propertyNames as Node | undefined)?.pattern ?? STORABLE_TEXT_PATTERN,
      };
    }
    for (const key of ['items', 'additionalProperties', 'allOf', 'anyOf', 'oneOf', 'not']) [node[key]].flat().forEach(visit);
    if (node.properties) Object.values(node.properties as Node).forEach(visit);
  };
  for (const item of Object.values(document.paths ?? {})) {
    for (const operation of Object.values(item) as {
      parameters?: { schema?: unknown }[];
      requestBody?: { content?: Record<string, { schema?: unknown }> };
    }[]) {
      operation.parameters?.forEach((parameter) => visit(parameter.schema));
      Object.values(operation.requestBody?.content ?? {}).forEach((media) => visit(media.schema));
    }
  }
}

export function generateDocument(registry: OpenAPIRegistry, version: string) {
  const document = new OpenApiGeneratorV31(registry.definitions).generateDocument({
    openapi: '3.1.0',
    info: {
      title: 'mcp-fleet API',
      version,
      description: [
        'Control plane for AI agents running on remote MCP servers. Errors are always `{ "error": { "code", "message", "details"? } }`; a 400 `validation_failed` lists one `{ path, message, code }` per problem.',
        `Every request, whatever its route: no string (nor object key) holds NUL (\\u0000) or a lone UTF-16 surrogate, and JSON nests at most ${MAX_JSON_DEPTH} levels (the part itself is level 1); request bodies are JSON objects with no field a schema does not name.`,
      ].join('\n\n'),
    },
    servers: [{ url: '/' }],
  });
  writeRequestRules(document as Parameters<typeof writeRequestRules>[0]);
  return document;
}
