/**
 * Structured output: the caller's `responseSchema` asked of the endpoint
 * (`response_format: json_schema`) and checked again here, because many OpenAI-compatible
 * servers take the schema as a hint at best. The check uses the JSON Schema validator the MCP
 * SDK ships (Ajv), so `data` is held to the same reading of JSON Schema as tool output schemas.
 */
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import type { JsonSchemaType } from '@modelcontextprotocol/sdk/validation/types.js';

export type AnswerCheck = { ok: true; data: unknown } | { ok: false; reason: string };

export interface StructuredOutput {
  /** The request's `response_format`. */
  responseFormat: { type: 'json_schema'; json_schema: { name: string; schema: Record<string, unknown>; strict: boolean } };
  /** The model's final text read as JSON and checked against the schema. */
  check(answer: string): AnswerCheck;
}

const validator = new AjvJsonSchemaValidator();

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Whether OpenAI's strict mode accepts the schema: every object closed (`additionalProperties:
 * false`) with all its properties required. Strict mode rejects any other schema with a 400,
 * so such a schema is sent as a non-strict hint and only the check here holds the answer to it.
 */
export function strictCompatible(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.every(strictCompatible);
  if (!isObject(schema)) return true;
  const isObjectSchema =
    schema.type === 'object' || (Array.isArray(schema.type) && schema.type.includes('object')) || isObject(schema.properties);
  if (isObjectSchema) {
    if (schema.additionalProperties !== false) return false;
    const properties = isObject(schema.properties) ? Object.keys(schema.properties) : [];
    const required = Array.isArray(schema.required) ? schema.required : [];
    if (!properties.every((name) => required.includes(name))) return false;
  }
  return Object.entries(schema).every(([key, value]) => key === 'required' || key === 'enum' || key === 'const' || strictCompatible(value));
}

/** The schema's `title` as a response_format name (`^[a-zA-Z0-9_-]{1,64}$`), or `response`. */
function formatName(schema: Json): string {
  const title = typeof schema.title === 'string' ? schema.title.replace(/[^a-zA-Z0-9_-]+/g, '_').slice(0, 64) : '';
  return /[a-zA-Z0-9]/.test(title) ? title : 'response';
}

/** The JSON in an answer, also when a local model wrapped it in a ``` fence despite the request. */
export function parseAnswer(answer: string): AnswerCheck {
  const trimmed = answer.trim();
  const fenced = /^```[a-zA-Z]*\s*\n([\s\S]*?)\n?```$/.exec(trimmed);
  const json = fenced ? fenced[1]! : trimmed;
  if (json === '') return { ok: false, reason: 'the answer is empty, not JSON' };
  try {
    return { ok: true, data: JSON.parse(json) as unknown };
  } catch (error) {
    return { ok: false, reason: `the answer is not JSON (${error instanceof Error ? error.message : String(error)})` };
  }
}

/** Prepares the request and the check for `schema`; throws when the schema itself is unusable. */
export function structuredOutput(schema: Record<string, unknown>): StructuredOutput {
  let validate: ReturnType<typeof validator.getValidator>;
  try {
    validate = validator.getValidator(schema as JsonSchemaType);
  } catch (error) {
    throw new Error(`responseSchema is not a usable JSON Schema: ${error instanceof Error ? error.message : String(error)}`);
  }
  return {
    responseFormat: { type: 'json_schema', json_schema: { name: formatName(schema), schema, strict: strictCompatible(schema) } },
    check(answer) {
      const parsed = parseAnswer(answer);
      if (!parsed.ok) return parsed;
      const result = validate(parsed.data);
      return result.valid
        ? { ok: true, data: parsed.data }
        : { ok: false, reason: `the answer does not match the responseSchema: ${result.errorMessage}` };
    },
  };
}
