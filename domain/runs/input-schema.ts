/**
 * The questions a host may ask (MCP elicitation, form mode) and the check of a person's answer.
 * A question's schema is the flat one the protocol allows: an object whose properties are
 * strings, numbers, integers, booleans or enums, nothing nested. The answer is held to it with
 * the JSON Schema validator the MCP SDK ships (Ajv), one field at a time, so each problem
 * names its field.
 */
import { createHash } from 'node:crypto';
import { ElicitRequestFormParamsSchema } from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import type { JsonSchemaType } from '@modelcontextprotocol/sdk/validation/types.js';

export interface FieldProblem {
  path: string;
  message: string;
  code: string;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Why `schema` is not a form a person can answer (nested, not an object, ...), or undefined when it is one. */
export function formSchemaProblem(schema: unknown): string | undefined {
  const parsed = ElicitRequestFormParamsSchema.shape.requestedSchema.safeParse(schema);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0]!;
  return `the requested schema is not a flat form (${issue.path.join('.') || 'schema'}: ${issue.message})`;
}

/** JSON with its keys sorted, so two spellings of one schema hash alike. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value))
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`)
      .join(',')}}`;
  return JSON.stringify(value);
}

/**
 * A question's identity within its run: the MCP task it came through and a hash of its message
 * and schema. A host that asks the same open question again (on every new `tasks/result`) finds
 * the same row.
 */
export function inputRequestKey(message: string, requestedSchema: Record<string, unknown>, taskId?: string): string {
  const hash = createHash('sha256').update(message).update('\0').update(canonical(requestedSchema)).digest('hex');
  return `${taskId ?? '-'}:${hash}`;
}

/**
 * The problems of an `accept` answer's `content` against the question's schema: a missing
 * required field, a field the question did not ask for, a value of the wrong type or outside
 * its enum, bounds or format. Paths are `body.content.<field>` (`body.content` for the whole).
 */
export function answerProblems(requestedSchema: Record<string, unknown>, content: Record<string, unknown> | undefined): FieldProblem[] {
  const properties = isObject(requestedSchema.properties) ? requestedSchema.properties : {};
  const required = Array.isArray(requestedSchema.required)
    ? requestedSchema.required.filter((r): r is string => typeof r === 'string')
    : [];
  const given = content ?? {};
  const problems: FieldProblem[] = [];
  for (const name of required) {
    if (given[name] === undefined) problems.push({ path: `body.content.${name}`, message: 'required by the question', code: 'required' });
  }
  // A new validator per answer: Ajv caches every schema object it compiles, and each question
  // brings its own.
  const validator = new AjvJsonSchemaValidator();
  for (const [name, value] of Object.entries(given)) {
    const field = properties[name];
    if (!isObject(field)) {
      problems.push({ path: `body.content.${name}`, message: 'the question does not ask for this field', code: 'unrecognized_key' });
      continue;
    }
    const result = validator.getValidator(field as JsonSchemaType)(value);
    if (!result.valid)
      problems.push({
        path: `body.content.${name}`,
        message: (result.errorMessage ?? 'is invalid').replace(/^data /, '').replace(/, data /g, ', '),
        code: 'invalid_input',
      });
  }
  return problems;
}
