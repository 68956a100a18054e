import { OpenApiGeneratorV31, OpenAPIRegistry } from '@asteasolutions/zod-to-openapi';
import { z } from './zod';
import { MAX_JSON_DEPTH, STORABLE_TEXT_PATTERN } from './validate';

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

export function createRegistry(): OpenAPIRegistry {
  const registry = new OpenAPIRegistry();
  registry.register('Error', ErrorSchema);
  registry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  return registry;
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
