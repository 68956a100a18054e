/**
 * Property-based robustness test driven by the published OpenAPI document: every operation
 * in it (so a new route is covered without a new case) gets generated requests — valid ones
 * from its schemas, and hostile ones (NUL, lone surrogates, deep nesting, huge numbers,
 * out-of-range dates, unknown fields, wrong types, unknown methods, odd content types and
 * encodings) — against the real stack: PostgreSQL, Temporal with a worker, and a real MCP
 * host behind the seeded server. Whatever comes back must be below 500, every error in the
 * one error shape, and no body may carry a stack trace or SQL.
 */
import { randomUUID } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { addMember, httpFor, PASSWORD, randomIp, registerAccount, type Account, type Http } from '../test/api';
import { activeAgent, registerHost } from '../test/fleet';
import { createTestContext, startTestWorker, type TestContext } from '../test/harness';

/** Generated requests per run; with the hand-picked ones below this stays within ~30-60 s. */
const RUNS = 600;

type JsonSchema = Record<string, unknown>;
interface Parameter {
  name: string;
  in: 'path' | 'query' | 'header';
  required?: boolean;
  schema: JsonSchema;
}
interface Operation {
  method: string;
  path: string;
  auth: boolean;
  parameters: Parameter[];
  body?: JsonSchema;
}
interface OpenApiDocument {
  paths: Record<
    string,
    Record<string, { security?: unknown[]; parameters?: Parameter[]; requestBody?: { content: Record<string, { schema: JsonSchema }> } }>
  >;
  components: { schemas: Record<string, JsonSchema> };
}

// ---- hostile values ---------------------------------------------------------------------

// Deep values travel as a marker spliced into the JSON text: building and stringifying a
// 5,000-level object here would overflow this process's own stack first.
const DEEP = /"\\u0001deep:(\d+)\\u0001"/g;
const deep = (levels: number) => `\u0001deep:${levels}\u0001`;

function nestedJson(levels: number): string {
  let open = '';
  let close = '';
  for (let i = 0; i < levels; i++) {
    open += i % 2 ? '[' : '{"k":';
    close = (i % 2 ? ']' : '}') + close;
  }
  return `${open}"leaf"${close}`;
}

/** JSON text of a generated value, deep markers expanded (to at most `maxLevels`). */
function toJson(value: unknown, maxLevels = Infinity): string {
  return (JSON.stringify(value) ?? 'null').replace(DEEP, (_m, levels: string) => nestedJson(Math.min(Number(levels), maxLevels)));
}

const HOSTILE_STRINGS = [
  'a\u0000b',
  '\u0000',
  '\ud800',
  'x\udc00y',
  '\ud83d',
  '',
  ' ',
  '%00',
  '0000-01-01T00:00:00Z',
  '+275760-09-13T00:00:00.000Z',
  '9999-12-31T23:59:59-23:59',
  '2024-02-30T25:61:00Z',
  "' OR 1=1 --",
  '../../etc/passwd',
  '${jndi:x}',
  '{{7*7}}',
  'x'.repeat(5000),
  '9'.repeat(400),
  '-1',
  '1e400',
  'NaN',
  'null',
];

const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(...HOSTILE_STRINGS),
  fc.constantFrom(1e308, -1e308, 2 ** 53 + 2, 2 ** 31, -(2 ** 31) - 1, -1, 0, 0.5, Number.MAX_SAFE_INTEGER),
  fc.constantFrom<unknown>(true, false, null, [], {}),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.integer({ min: 30, max: 40 }).map(deep),
  fc.constant(deep(5000)),
  fc.jsonValue({ maxDepth: 3 }),
  fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), fc.string({ unit: 'binary', maxLength: 6 }), { maxKeys: 3 }),
);

// ---- values from the document's schemas -------------------------------------------------

function resolve(schema: JsonSchema, doc: OpenApiDocument): JsonSchema {
  const ref = schema.$ref as string | undefined;
  return ref ? resolve(doc.components.schemas[ref.replace('#/components/schemas/', '')]!, doc) : schema;
}

function patternArbitrary(pattern: string): fc.Arbitrary<string> | undefined {
  try {
    return fc.stringMatching(new RegExp(pattern, 'u'));
  } catch {
    return undefined;
  }
}

/** Ids of real rows the generated ids sometimes point at (read when a case is generated). */
let knownIds: () => string[] = () => [];

/**
 * A value for `schema`. With `gentleness` set, any node may instead be a hostile value (1 in
 * gentleness + 1), and objects may grow unknown fields.
 */
function valueFor(input: JsonSchema, doc: OpenApiDocument, gentleness: number | undefined, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve(input, doc);
  const valid = validValue(schema, doc, gentleness, depth);
  return gentleness === undefined ? valid : fc.oneof({ weight: gentleness, arbitrary: valid }, { weight: 1, arbitrary: hostileValue });
}

function validValue(schema: JsonSchema, doc: OpenApiDocument, gentleness: number | undefined, depth: number): fc.Arbitrary<unknown> {
  const variants = (schema.anyOf ?? schema.oneOf) as JsonSchema[] | undefined;
  if (variants) return fc.oneof(...variants.map((v) => valueFor(v, doc, gentleness, depth + 1)));
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  if ('const' in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.type))
    return fc.oneof(...(schema.type as string[]).map((type) => validValue({ ...schema, type }, doc, gentleness, depth)));
  const min = schema.minimum as number | undefined;
  const max = schema.maximum as number | undefined;
  switch (schema.type) {
    case 'string': {
      if (schema.format === 'uuid')
        return fc.oneof(
          fc.uuid(),
          fc.nat().map((i) => knownIds()[i % knownIds().length] ?? randomUUID()),
        );
      if (schema.format === 'email') return fc.emailAddress();
      if (schema.format === 'date-time')
        return fc.date({ min: new Date('1990-01-01'), max: new Date('2100-01-01'), noInvalidDate: true }).map((d) => d.toISOString());
      const fromPattern = typeof schema.pattern === 'string' ? patternArbitrary(schema.pattern) : undefined;
      const minLength = (schema.minLength as number | undefined) ?? 0;
      const maxLength = Math.max(minLength, Math.min((schema.maxLength as number | undefined) ?? 40, 60));
      return (fromPattern ?? fc.string({ minLength, maxLength })).filter((s) => s.length >= minLength && s.length <= maxLength);
    }
    case 'integer':
      return fc.integer({ min: min ?? -1000, max: max ?? 1000 });
    case 'number':
      return fc.double({ min: min ?? -1e6, max: max ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(valueFor((schema.items as JsonSchema) ?? {}, doc, gentleness, depth + 1), {
        maxLength: Math.min((schema.maxItems as number | undefined) ?? 3, 3),
      });
    case 'object': {
      const properties = (schema.properties ?? {}) as Record<string, JsonSchema>;
      const required = (schema.required ?? []) as string[];
      const known = fc.record(
        Object.fromEntries(Object.entries(properties).map(([key, value]) => [key, valueFor(value, doc, gentleness, depth + 1)])),
        { requiredKeys: required.filter((key) => key in properties) },
      ) as fc.Arbitrary<Record<string, unknown>>;
      const open = schema.additionalProperties;
      const extraKeys =
        open && typeof open === 'object'
          ? fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 })
          : fc.constant({});
      const unknown =
        gentleness === undefined
          ? fc.constant({})
          : fc.option(
              fc.dictionary(fc.constantFrom('extra', '__proto__', 'constructor', 'x\u0000', '\ud800', ''), hostileValue, { maxKeys: 2 }),
              { freq: 5, nil: {} },
            );
      return fc.tuple(known, extraKeys, unknown).map(([a, b, c]) => ({ ...b, ...c, ...a }));
    }
    default:
      return depth > 3 ? fc.constant('x') : fc.jsonValue({ maxDepth: 3 });
  }
}

// ---- how a request is sent --------------------------------------------------------------

/** Percent-encodes the UTF-8 bytes: encodeURIComponent throws on lone surrogates. */
function encode(value: string): string {
  return [...Buffer.from(value, 'utf8')]
    .map((b) =>
      /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`,
    )
    .join('');
}

/**
 * A query value, kept short (1,000 characters, 40 levels deep): a longer URL would outgrow
 * Node's 16 KB header limit and be refused with a bare 431 before the app sees it.
 */
function asText(value: unknown): string {
  const text =
    typeof value === 'string'
      ? value.replace(/\u0001deep:(\d+)\u0001/g, (_m, levels: string) => nestedJson(Math.min(Number(levels), 40)))
      : toJson(value, 40);
  return text.slice(0, 1000);
}

type BodyStyle =
  | 'json'
  | 'text/plain'
  | 'form'
  | 'no-type'
  | 'gzip'
  | 'bad-gzip'
  | 'unknown-encoding'
  | 'bad-charset'
  | 'broken-json'
  | 'scalar-json'
  | 'none';

const bodyStyle: fc.Arbitrary<BodyStyle> = fc.oneof(
  { weight: 20, arbitrary: fc.constant<BodyStyle>('json') },
  {
    weight: 1,
    arbitrary: fc.constantFrom<BodyStyle>(
      'text/plain',
      'form',
      'no-type',
      'gzip',
      'bad-gzip',
      'unknown-encoding',
      'bad-charset',
      'broken-json',
      'scalar-json',
      'none',
    ),
  },
);

type Credentials = 'valid' | 'none' | 'garbage';
const credentials: fc.Arbitrary<Credentials> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Credentials>('valid') },
  { weight: 1, arbitrary: fc.constantFrom<Credentials>('none', 'garbage') },
);

const OTHER_METHODS = ['TRACE', 'PROPFIND', 'OPTIONS', 'HEAD', 'LOCK', 'SEARCH', 'PATCH', 'PUT', 'DELETE'];

interface Case {
  operation: Operation;
  method: string;
  pathValues: Record<string, { kind: 'seed' | 'random' | 'hostile'; value: string }>;
  query: Array<[string, string]>;
  body: unknown;
  style: BodyStyle;
  credentials: Credentials;
}

// ---- the test ---------------------------------------------------------------------------

describe('every route of the OpenAPI document, under generated and hostile input', () => {
  let ctx: TestContext;
  let worker: Awaited<ReturnType<typeof startTestWorker>>;
  let http: Http;
  let host: Awaited<ReturnType<typeof registerHost>>['host'] | undefined;
  let admin: Account;
  let doc: OpenApiDocument;
  /** Real resources for `{id}`, by the path's first segment; re-created when a case deletes one. */
  const seeds: Record<string, string[]> = {};
  const stale = new Set<string>();

  async function seed(kind: string): Promise<void> {
    const bearer = { Authorization: `Bearer ${admin.accessToken}` };
    if (kind === 'servers') {
      const registered = await registerHost(http, admin);
      seeds.servers = [registered.serverId];
      await host?.close();
      host = registered.host;
    }
    if (kind === 'agents') {
      // On a fresh server: the old one may still hold the MASTER (one per server).
      await seed('servers');
      const plain = await activeAgent(http, admin, seeds.servers![0]!);
      const master = await activeAgent(http, admin, seeds.servers![0]!, { role: 'MASTER' });
      seeds.agents = [plain.id, master.id];
      stale.add('executions');
    }
    if (kind === 'executions') {
      if (stale.has('agents') || !seeds.agents) await seed('agents');
      const started = await http.post(`/api/agents/${seeds.agents![0]}/execute`).set(bearer).send({ prompt: 'seed run' }).expect(202);
      seeds.executions = [started.body.executionId];
    }
    if (kind === 'users') seeds.users = [(await addMember(http, admin, 'VIEWER')).userId];
    if (kind === 'audit') seeds.audit = [(await http.get('/api/audit').set(bearer).expect(200)).body.items[0].id];
    stale.delete(kind);
  }

  beforeAll(async () => {
    knownIds = () => Object.values(seeds).flat();
    ctx = await createTestContext();
    worker = await startTestWorker(ctx);
    http = httpFor(ctx);
    admin = await registerAccount(http, 'Fuzz Org');
    for (const kind of ['agents', 'executions', 'users', 'audit']) await seed(kind);
    doc = (await http.get('/api/openapi.json').expect(200)).body as OpenApiDocument;
  }, 120_000);
  afterAll(async () => {
    await host?.close();
    await worker?.stop();
    await ctx?.close();
  });

  function operations(): Operation[] {
    return Object.entries(doc.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, op]) => ({
        method: method.toUpperCase(),
        path,
        auth: Boolean(op.security?.length),
        parameters: op.parameters ?? [],
        body: op.requestBody?.content['application/json']?.schema,
      })),
    );
  }

  function caseFor(operation: Operation): fc.Arbitrary<Case> {
    // undefined: only valid values; a number: hostile values mixed in, 1 in (n + 1) per node.
    const gentleness = fc.oneof(fc.constant(undefined), fc.constantFrom(2, 6, 20));
    return gentleness.chain((g) => {
      const pathParams = operation.parameters.filter((p) => p.in === 'path');
      const queryParams = operation.parameters.filter((p) => p.in === 'query');
      const pathValues = fc.record(
        Object.fromEntries(
          pathParams.map((p) => [
            p.name,
            fc.oneof(
              { weight: 5, arbitrary: fc.nat(9).map((i) => ({ kind: 'seed' as const, value: String(i) })) },
              { weight: 2, arbitrary: fc.uuid().map((value) => ({ kind: 'random' as const, value })) },
              {
                weight: 2,
                arbitrary: fc
                  .oneof(fc.constantFrom(...HOSTILE_STRINGS), fc.string({ unit: 'binary', maxLength: 10 }))
                  .map((value) => ({ kind: 'hostile' as const, value })),
              },
            ),
          ]),
        ),
      );
      const query = fc
        .tuple(
          ...queryParams.map((p) =>
            fc.option(
              valueFor(p.schema, doc, g).map((v) => [[p.name, asText(v)]] as Array<[string, string]>),
              { nil: [] as Array<[string, string]>, freq: 2 },
            ),
          ),
          g === undefined
            ? fc.constant([])
            : fc.option(
                fc
                  .tuple(fc.constantFrom('unknown', 'limit', 'cursor', '__proto__', 'q'), fc.constantFrom(...HOSTILE_STRINGS))
                  .map((pair) => [pair]),
                { nil: [], freq: 3 },
              ),
        )
        .map((parts) => (parts as Array<Array<[string, string]>>).flat());
      const body = operation.body ? valueFor(operation.body, doc, g) : fc.constant(undefined);
      const method =
        g === undefined
          ? fc.constant(operation.method)
          : fc.oneof({ weight: 12, arbitrary: fc.constant(operation.method) }, { weight: 1, arbitrary: fc.constantFrom(...OTHER_METHODS) });
      return fc.record({
        operation: fc.constant(operation),
        method,
        pathValues: pathValues as fc.Arbitrary<Case['pathValues']>,
        query,
        body,
        style: g === undefined ? fc.constant<BodyStyle>('json') : bodyStyle,
        credentials: g === undefined ? fc.constant<Credentials>('valid') : credentials,
      });
    });
  }

  async function run(c: Case) {
    for (const kind of stale) await seed(kind);
    const kind = c.operation.path.split('/')[2]!;
    let url = c.operation.path.replace(/\{(\w+)\}/g, (_m, name: string) => {
      const chosen = c.pathValues[name]!;
      const known = seeds[kind] ?? [];
      const value = chosen.kind === 'seed' ? (known[Number(chosen.value) % known.length] ?? randomUUID()) : chosen.value;
      return encode(value);
    });
    if (c.query.length) url += `?${c.query.map(([k, v]) => `${encode(k)}=${encode(v)}`).join('&')}`;
    const method = c.method.toLowerCase() as 'get';
    let req = http[method](url).set('X-Forwarded-For', randomIp());
    if (c.credentials === 'valid') req = req.set('Authorization', `Bearer ${admin.accessToken}`);
    if (c.credentials === 'garbage') req = req.set('Authorization', 'Bearer not.a.jwt');
    const json = toJson(c.body ?? {});
    if (c.operation.body || c.style !== 'json') {
      switch (c.style) {
        case 'json':
          req = req.set('Content-Type', 'application/json').send(json);
          break;
        case 'text/plain':
          req = req.set('Content-Type', 'text/plain').send(json);
          break;
        case 'form':
          req = req.set('Content-Type', 'application/x-www-form-urlencoded').send('a=1&b=%00');
          break;
        case 'no-type':
          req = req.serialize((x: unknown) => x as string).send(Buffer.from(json) as never);
          break;
        case 'gzip':
          req = req
            .set('Content-Type', 'application/json')
            .set('Content-Encoding', 'gzip')
            .serialize((x: unknown) => x as string)
            .send(gzipSync(json) as never);
          break;
        case 'bad-gzip':
          req = req.set('Content-Type', 'application/json').set('Content-Encoding', 'gzip').send(json);
          break;
        case 'unknown-encoding':
          req = req.set('Content-Type', 'application/json').set('Content-Encoding', 'zstd').send(json);
          break;
        case 'bad-charset':
          req = req.set('Content-Type', 'application/json; charset=ebcdic').send(json);
          break;
        case 'broken-json':
          req = req.set('Content-Type', 'application/json').send(json.slice(0, Math.max(1, json.length - 1)));
          break;
        case 'scalar-json':
          req = req.set('Content-Type', 'application/json').send('"just a string"');
          break;
        case 'none':
          break;
      }
    }
    const res = await req;
    const where = `${c.method} ${url} (${c.style}, ${c.credentials}) → ${res.status} ${res.text?.slice(0, 300)}`;
    // A documented 502 (the agent's server refused: master_failed, provision_failed, check_failed)
    // is the upstream's answer relayed, not a crash of ours.
    const upstream =
      res.status === 502 &&
      ['master_failed', 'provision_failed', 'check_failed'].includes((res.body as { error?: { code?: string } })?.error?.code ?? '');
    expect({ where, serverError: res.status >= 500 && !upstream }).toEqual({ where, serverError: false });
    if (res.status >= 400 && c.method !== 'HEAD') {
      expect({ where, body: res.body }).toEqual({
        where,
        body: { error: expect.objectContaining({ code: expect.stringMatching(/^[a-z_]+$/), message: expect.any(String) }) },
      });
      expect(Object.keys(res.body.error as object).filter((k) => !['code', 'message', 'details'].includes(k))).toEqual([]);
    }
    const text = res.text ?? '';
    expect({ where, stack: /\n\s+at .+:\d+:\d+|node_modules|\/work\//.test(text) }).toEqual({ where, stack: false });
    expect({ where, sql: /\b(insert\s+into|delete\s+from|update\s+"?\w+"?\s+set|select\s[^"]{0,200}\sfrom\s)/i.test(text) }).toEqual({
      where,
      sql: false,
    });

    // Keep the seeds and the credentials usable for the cases that follow.
    if (c.method === 'DELETE' && res.status < 300 && kind in seeds) stale.add(kind === 'servers' ? 'agents' : kind);
    if (res.status === 401 && c.credentials === 'valid' && !c.operation.path.startsWith('/api/auth/')) {
      const login = await http
        .post('/api/auth/login')
        .set('X-Forwarded-For', randomIp())
        .send({ email: admin.email, password: PASSWORD })
        .expect(200);
      admin = { ...admin, accessToken: login.body.accessToken, refreshToken: login.body.refreshToken };
    }
    return res.status;
  }

  it('publishes patterns a JSON Schema validator can compile (no regex flags leaking into them)', () => {
    const patterns = JSON.stringify(doc).match(/"pattern":"((?:[^"\\]|\\.)*)"/g) ?? [];
    expect(patterns.length).toBeGreaterThan(0);
    for (const entry of patterns) {
      const pattern = JSON.parse(`{${entry}}`).pattern as string;
      expect(pattern).not.toMatch(/\/[a-z]*$/);
      expect(() => new RegExp(pattern, 'u')).not.toThrow();
    }
  });

  it('answers no generated request with a 5xx, a stack trace, SQL or another error shape', async () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThan(30);
    const statuses = new Map<number, number>();
    const seen = new Set<string>();
    const started = Date.now();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...ops).chain(caseFor), async (c) => {
        const status = await run(c);
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
        seen.add(`${c.operation.method} ${c.operation.path}`);
      }),
      { numRuns: RUNS, endOnFailure: true },
    );
    // Every operation was reached at least once, and not everything was a refusal.
    expect([...ops.map((o) => `${o.method} ${o.path}`)].filter((o) => !seen.has(o))).toEqual([]);
    expect([...statuses.keys()].some((s) => s < 300)).toBe(true);
    process.stdout.write(
      `[fuzz] ${RUNS} cases over ${ops.length} operations in ${Date.now() - started} ms; statuses ${JSON.stringify(Object.fromEntries([...statuses].sort()))}\n`,
    );
  }, 300_000);
});
