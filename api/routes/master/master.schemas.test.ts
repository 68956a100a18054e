import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv-provider.js';
import { AGENT_SPEC_JSON_SCHEMA, AgentSpec } from './master.schemas';

describe('the agent specification sent to hosts as a JSON Schema', () => {
  // The validator an MCP host built on the official SDK would use for a structured answer.
  const validate = new AjvJsonSchemaValidator().getValidator(AGENT_SPEC_JSON_SCHEMA as never);
  const long = (n: number) => 'a'.repeat(n);

  // Strings without surrounding whitespace: zod trims before its checks, a JSON Schema cannot.
  it.each<[string, unknown]>([
    ['the smallest spec', { name: 'release-bot', role: 'WORKER' }],
    [
      'every field',
      {
        name: 'R2_d2',
        displayName: 'Release bot',
        description: 'Cuts releases',
        role: 'SUPERVISOR',
        capabilities: ['git', 'ci:deploy', 'a.b_c-d'],
        maxConcurrency: 50,
      },
    ],
    ['the longest name', { name: long(100), role: 'WORKER' }],
    ['fifty capabilities', { name: 'x', role: 'WORKER', capabilities: Array.from({ length: 50 }, (_, i) => `c${i}`) }],
    ['no name', { role: 'WORKER' }],
    ['no role', { name: 'x' }],
    ['a MASTER', { name: 'x', role: 'MASTER' }],
    ['an unknown role', { name: 'x', role: 'EMPEROR' }],
    ['a name with a space', { name: 'bad name!', role: 'WORKER' }],
    ['an empty name', { name: '', role: 'WORKER' }],
    ['a name starting with a dash', { name: '-x', role: 'WORKER' }],
    ['a name too long', { name: long(101), role: 'WORKER' }],
    ['an empty display name', { name: 'x', displayName: '', role: 'WORKER' }],
    ['a display name too long', { name: 'x', displayName: long(201), role: 'WORKER' }],
    ['a description too long', { name: 'x', description: long(4001), role: 'WORKER' }],
    ['an unknown field', { name: 'x', role: 'WORKER', status: 'ACTIVE' }],
    ['51 capabilities', { name: 'x', role: 'WORKER', capabilities: Array.from({ length: 51 }, (_, i) => `c${i}`) }],
    ['an upper-case capability', { name: 'x', role: 'WORKER', capabilities: ['Git'] }],
    ['a capability too long', { name: 'x', role: 'WORKER', capabilities: [long(65)] }],
    ['no concurrency', { name: 'x', role: 'WORKER', maxConcurrency: 0 }],
    ['too much concurrency', { name: 'x', role: 'WORKER', maxConcurrency: 51 }],
    ['a fractional concurrency', { name: 'x', role: 'WORKER', maxConcurrency: 1.5 }],
    ['not an object', ['x', 'WORKER']],
  ])('accepts or refuses %s as the API does', (_label, spec) => {
    expect(validate(spec).valid).toBe(AgentSpec.safeParse(spec).success);
  });
});
