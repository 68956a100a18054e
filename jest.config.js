/** @type {import('jest').Config} */
const swc = [
  '@swc/jest',
  {
    jsc: {
      target: 'es2022',
      parser: { syntax: 'typescript', decorators: true },
      transform: { legacyDecorator: true, decoratorMetadata: true },
    },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  },
];

module.exports = {
  testEnvironment: 'node',
  transform: { '^.+\\.ts$': swc },
  testMatch: ['<rootDir>/**/*.test.ts'],
  // `*.llm.test.ts` run real AI programs and model servers: `npm run test:llm` (jest.llm.config.js), not `npm test`.
  testPathIgnorePatterns: ['/node_modules/', '/dist/', '/.data/', '/.tools/', '\\.llm\\.test\\.ts$'],
  // One embedded PostgreSQL and one Temporal dev server for the whole run.
  globalSetup: '<rootDir>/test/global-setup.ts',
  globalTeardown: '<rootDir>/test/global-teardown.ts',
  // A ceiling: CI runs on a loaded 2-core machine, where a test that takes seconds idle may take a minute.
  testTimeout: 120_000,
  maxWorkers: 2,
  // `npm test` runs `jest --coverage`; a single `npx jest path` stays fast and ungated.
  // V8's own coverage, mapped through swc's source maps: no instrumentation step to maintain.
  coverageProvider: 'v8',
  // Product code: what runs in production. The exclusions below are not measured, for the reasons given.
  collectCoverageFrom: [
    '<rootDir>/{api,activities,domain,entities,lib,worker,host}/**/*.ts',
    '!**/*.test.ts',
    // Generated DDL, run once per database by the migration child process.
    '!<rootDir>/entities/migrations/**',
    // Process entry points: they run only as child processes (the worker-crash test, the global
    // setup's migrations, the dev smoke), which Jest's coverage does not follow. Their logic lives
    // in the modules they call (createApp, createWorker, key-rotation, orm), which are measured.
    '!<rootDir>/{api,worker,host}/main.ts',
    '!<rootDir>/worker/build-bundle.ts',
    // Types only: no runtime code, which V8 would count as uncovered lines.
    '!<rootDir>/{api/context,activities/deps,api/realtime/socket-events}.ts',
  ],
  // dev/ is not listed: dev and test tooling (embedded PostgreSQL, the Temporal dev server and
  // CLI lookup, free ports), which never runs in production, and mostly in the global setup,
  // outside Jest's coverage. scripts/ is not listed: migrate.ts and rotate-keys.ts are entry
  // points as above, the rest is dev tooling.
  // workflows/ is not listed either: workflow code runs in Temporal's sandbox
  // from a webpack bundle, so V8 sees only the modules' top level, never a workflow body. The
  // tests run every workflow on real workers; measuring them would take instrumenting the
  // bundle (istanbul), which this project does not do.
  coverageReporters: ['text-summary', 'json-summary'],
  coverageThreshold: { global: { lines: 80, branches: 80 } },
};
