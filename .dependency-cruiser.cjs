/**
 * The layer rules of docs/architecture.md (Layers), checked by `npm run lint` (`lint:layers`).
 * One rule per arrow the document forbids, each with why. A violation names its rule; the
 * planted-violation test (test/layer-rules.test.ts) shows each rule catches what it says.
 *
 * Paths are relative to the repository root. Tests (`*.test.ts`) and test/, bench/, scripts/
 * drive the whole system and may import any layer: the rules apply to product code only,
 * except the cycle rule, which applies everywhere.
 */

// Test code: any `*.test.ts`, wherever it lives.
const TEST = '\\.test\\.ts$';
// Dev tooling (embedded PostgreSQL, the Temporal dev server, free ports), at the top level in dev/.
// It never runs in production.
const DEV = '^dev/';
// Workflow contracts: names, ids, signals, queries, input and result types that clients share
// with the workflows (temporalio/samples-typescript's shared.ts), leaves that load no workflow code.
const CONTRACT = '^workflows/(contracts/|[^/]+\\.contract\\.ts$)';
// What the reference host shares with the control plane: the contract's schemas, and the reading
// of a command line, of a tool's command scope and of an address that both sides must agree on
// (host-protocol.md); the /metrics listener every process serves (lib/metrics.ts).
// tracing, tracing-config: the host exports its spans as the control plane does (docs/tracing.md).
const HOST_SHARED = '^lib/(host-contract|tool-commands|command-line|program-profiles|ssrf-address|metrics|tracing|tracing-config)\\.ts$';
// Infrastructure: config, logger, ORM, crypto, URL policy, MCP client, Temporal connection.
const LIB = '^lib/';
// Every project folder that is a layer or drives one.
const PROJECT = '^(api|activities|domain|entities|host|lib|worker|workflows|dev|scripts|test|bench)/';
// Dependencies the compiler erases: `import type`, `import { type X }`, `typeof import('x')`.
const ERASED = ['type-only', 'type-import'];
// What Temporal's workflow sandbox may load: its own SDK modules, no Node built-ins, no I/O.
// interceptors-opentelemetry: its workflow interceptors are written for the sandbox (workflows/interceptors.ts).
const WORKFLOW_RUNTIME = '(^|/)node_modules/@temporalio/(workflow|common|interceptors-opentelemetry)/';

module.exports = {
  forbidden: [
    {
      name: 'lib-imports-no-layer',
      severity: 'error',
      comment:
        'lib/ is infrastructure (config, logger, crypto, URL policy, MCP client, Temporal connection) that every layer uses; ' +
        'importing a layer above it would tie that infrastructure to one caller and make cycles. ' +
        'lib/orm.ts, the ORM configuration, is the one lib module that lists the entities (rule lib-orm-imports-entities-only).',
      from: { path: '^lib/', pathNot: [DEV, TEST, '^lib/orm\\.ts$'] },
      to: { path: [PROJECT, DEV], pathNot: LIB },
    },
    {
      name: 'lib-orm-imports-entities-only',
      severity: 'error',
      comment:
        'lib/orm.ts configures MikroORM, whose configuration is the list of entities and migrations (entities/index.ts, entities/migrations/): ' +
        'it imports entities/ for that, and no other layer.',
      from: { path: '^lib/orm\\.ts$' },
      to: { path: [PROJECT, DEV], pathNot: [LIB, '^entities/'] },
    },
    {
      name: 'dev-tooling-imports-lib-only',
      severity: 'error',
      comment:
        'Dev tooling starts the services a process needs in development and tests; it builds on lib/ (config, logger) ' +
        'and must not reach into the layers it serves.',
      from: { path: DEV, pathNot: TEST },
      to: { path: PROJECT, pathNot: [LIB, DEV] },
    },
    {
      name: 'product-imports-no-dev-or-test-code',
      severity: 'error',
      comment:
        'Production never runs dev tooling, the test harness, benchmarks or scripts: product code that imported them ' +
        'would load embedded PostgreSQL or a Temporal dev server in production, or fail there.',
      from: { path: '^(api|activities|domain|entities|host|lib|worker|workflows)/', pathNot: [DEV, TEST] },
      to: { path: [DEV, '^(scripts|test|bench)/', TEST] },
    },
    {
      name: 'entities-import-lib-only',
      severity: 'error',
      comment:
        'entities/ is loaded by the ORM and by the migrations (lib/orm.ts, scripts/migrate.ts): the data model knows ' +
        'no rules, no HTTP and no Temporal, and may use lib/ only (the seeders read a command line with lib/command-line.ts).',
      from: { path: '^entities/', pathNot: TEST },
      to: { path: [PROJECT, DEV], pathNot: [LIB, '^entities/'] },
    },
    {
      name: 'domain-imports-lib-entities-contracts',
      severity: 'error',
      comment:
        'domain/ holds the rules that an HTTP handler, an activity and a schedule run alike: it knows no Koa (api/), ' +
        'no activity context (activities/), no worker and no host. It builds on lib/ and entities/, and starts and ' +
        'signals workflows through their contracts (rule workflow-bodies-only-in-the-worker).',
      from: { path: '^domain/', pathNot: TEST },
      to: { path: [PROJECT, DEV], pathNot: [LIB, '^(domain|entities|workflows)/'] },
    },
    {
      name: 'workflows-deterministic',
      severity: 'error',
      comment:
        "Workflow code is replayed deterministically in Temporal's sandbox from a webpack bundle: at run time it may " +
        'load only other workflow files, their contracts and @temporalio/workflow or @temporalio/common; no Node ' +
        'built-in, no other package, no lib/ module (config, logger, I/O). `import type` is erased and allowed.',
      from: { path: '^workflows/', pathNot: TEST },
      to: { pathNot: ['^workflows/', WORKFLOW_RUNTIME], dependencyTypesNot: ERASED },
    },
    {
      name: 'workflows-import-no-api-or-entities',
      severity: 'error',
      comment:
        'Not even types: a workflow sees plain data (its input, activity results), never an ORM entity or an HTTP ' +
        'shape, so a change to either cannot change what a running workflow replays.',
      from: { path: '^workflows/', pathNot: TEST },
      to: { path: '^(api|entities|host|worker)/' },
    },
    {
      name: 'workflow-contracts-are-leaves',
      severity: 'error',
      comment:
        'A contract is what clients (domain/, api/, activities/) import to start, signal and query a workflow; if it ' +
        'imported a workflow body, every client would load workflow code and the cycle client → workflow → ' +
        'activities → client would come back.',
      from: { path: CONTRACT, pathNot: TEST },
      to: { path: '^workflows/', pathNot: CONTRACT },
    },
    {
      name: 'workflow-bodies-only-in-the-worker',
      severity: 'error',
      comment:
        'Only the worker loads workflow code (its bundle, its schedules). The API, the domain rules and the activities ' +
        'start, signal and query workflows through their contracts; `import type` of a workflow function, for a typed ' +
        'start, is erased and allowed.',
      from: { path: '^(api|activities|domain|entities|host|lib)/', pathNot: [DEV, TEST] },
      to: { path: '^workflows/', pathNot: CONTRACT, dependencyTypesNot: ERASED },
    },
    {
      name: 'api-imports-no-activities',
      severity: 'error',
      comment:
        'The API and the activities run in different processes (api/main.ts, worker/main.ts) and meet only in domain/: ' +
        'a rule needed by both belongs there, once.',
      from: { path: '^api/', pathNot: TEST },
      to: { path: '^activities/' },
    },
    {
      name: 'activities-import-no-api',
      severity: 'error',
      comment:
        'An activity runs in the worker with no HTTP request: it must not depend on Koa handlers, presenters or the ' +
        'API composition root. A rule needed by both belongs in domain/.',
      from: { path: '^activities/', pathNot: TEST },
      to: { path: '^api/' },
    },
    {
      name: 'host-imports-only-the-contract',
      severity: 'error',
      comment:
        'host/ is the reference agent host, a separate program and a starting point for real hosts: it talks to the ' +
        'control plane only through the host contract, so it imports, of the project, only the modules both sides ' +
        'share (lib/host-contract.ts and the command-line, command-scope and address readings it must apply the same way).',
      from: { path: '^host/', pathNot: TEST },
      to: { path: [PROJECT, DEV], pathNot: ['^host/', HOST_SHARED] },
    },
    {
      name: 'host-contract-is-a-leaf',
      severity: 'error',
      comment:
        'What the host shares with the control plane must not pull the control plane in behind it (config, ORM, ' +
        'Temporal): these modules import only each other.',
      from: { path: HOST_SHARED },
      to: { path: [PROJECT, DEV], pathNot: HOST_SHARED },
    },
    {
      name: 'control-plane-imports-no-host',
      severity: 'error',
      comment:
        'The control plane reaches a host over MCP only, as it reaches any real host; the reference host is started by ' +
        'the dev script, the tests and the benchmarks, never loaded by product code.',
      from: { path: '^(api|activities|domain|entities|lib|worker|workflows)/', pathNot: [DEV, TEST] },
      to: { path: '^host/' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'Modules that import each other at run time load in an order that depends on who is imported first, and one ' +
        'of them sees the other half-initialised (an undefined export). A cycle of `import type` alone is erased by ' +
        'the compiler but still ties its files: none can be read, tested or moved without the others (the workflow ' +
        'contracts once closed one through 28 files). What two modules share goes into a third that both import.',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    // The folders to cruise are given on the command line (`npm run lint:layers`: the whole
    // repository); these are never part of it.
    exclude: { path: '^(node_modules|dist|coverage|\\.data|\\.tools|\\.git)/' },
    // Packages are leaves: the rules look at which package a module imports, not inside it.
    doNotFollow: { path: 'node_modules' },
    // Resolve as TypeScript does, and see `import type` (which the compiler erases) as such.
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    // Subpath imports such as @modelcontextprotocol/sdk/types.js resolve through `exports`.
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['require', 'import', 'node', 'default', 'types'],
      mainFields: ['main', 'types', 'typings'],
    },
  },
};
