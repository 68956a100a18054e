/**
 * `npm run test:llm`: the engines against a real model server, offline (llama.cpp's server from
 * the xllamacpp wheel with SmolLM2-135M, installed into .tools/llm by scripts/install-local-model.ts).
 * Only `*.llm.test.ts`, which `npm test` leaves out: a real model is slow on 2 cores, and its
 * answers, though fixed at temperature 0, are a model's. Same global setup as `npm test`
 * (one real PostgreSQL and Temporal dev server).
 */
const base = require('./jest.config.js');

/** @type {import('jest').Config} */
module.exports = {
  ...base,
  testMatch: ['<rootDir>/**/*.llm.test.ts'],
  testPathIgnorePatterns: base.testPathIgnorePatterns.filter((pattern) => pattern !== '\\.llm\\.test\\.ts$'),
  // One model server at a time: two suites generating at once would halve each other's speed.
  maxWorkers: 1,
  collectCoverage: false,
  coverageThreshold: undefined,
};
