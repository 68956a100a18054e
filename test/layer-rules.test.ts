/**
 * The layer rules (.dependency-cruiser.cjs, docs/architecture.md "Layers") catch what they say.
 * dependency-cruiser runs, as `npm run lint:layers` does, with the real configuration on a copy
 * of the real tree in a temporary folder outside the repository, to which one planted file per
 * rule adds a forbidden import: each must be reported under its rule's name, and a few planted
 * imports the rules allow must not be. The copy keeps planted files away from ESLint, tsc and
 * the other tests, even when this test dies before its cleanup. The real tree itself must have
 * no error.
 */
import { execFile } from 'node:child_process';
import { appendFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');
const DEPCRUISE = path.join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');
const FOLDERS = ['api', 'activities', 'domain', 'entities', 'host', 'lib', 'worker', 'workflows', 'dev', 'scripts', 'test', 'bench'];

interface Violation {
  from: string;
  to: string;
  rule: { name: string; severity: string };
  /** For a cycle: its modules, from `from`'s next one round to `from`. */
  cycle?: { name: string }[];
}

interface Report {
  /** Every module cruised, by its path in `dir`. */
  modules: string[];
  violations: Violation[];
}

/** dependency-cruiser's JSON report of `dir`, as lint:layers cruises it (it exits with the number of errors). */
function cruise(dir: string): Promise<Report> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [DEPCRUISE, '--config', CONFIG, '--output-type', 'json', '.'],
      { cwd: dir, maxBuffer: 256 * 1024 * 1024 },
      (error, stdout, stderr) => {
        try {
          const report = JSON.parse(stdout) as { modules: { source: string }[]; summary: { violations: Violation[] } };
          resolve({ modules: report.modules.map((m) => m.source), violations: report.summary.violations });
        } catch {
          reject(new Error(`dependency-cruiser gave no report (${error?.message ?? 'no error'}): ${stderr}`));
        }
      },
    );
  });
}

// A module in each layer for the planted files to import: the test names no real module
// that a refactoring may move.
const TARGETS = [
  'api/layer-rules-target.ts',
  'activities/layer-rules-target.ts',
  'domain/layer-rules-target.ts',
  'entities/layer-rules-target.ts',
  'host/layer-rules-target.ts',
  'lib/layer-rules-target.ts',
  'dev/layer-rules-target.ts',
  'test/layer-rules-target.ts',
  'workflows/layer-rules-target.workflow.ts',
  'workflows/contracts/layer-rules-target.ts',
  'workflows/layer-rules-target.contract.ts',
];

/** One forbidden import per row: the file that makes it, what it says, and the rule that must report it. */
const PLANTED: { rule: string; file: string; source: string }[] = [
  {
    rule: 'lib-imports-no-layer',
    file: 'lib/planted.ts',
    source: "import { target } from '../domain/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'lib-imports-no-layer',
    file: 'lib/planted-dev.ts',
    source: "import { target } from '../dev/layer-rules-target';\nexport const x = target;\n",
  },
  // The ORM configuration may import entities/, nothing else: an import added to the real file.
  { rule: 'lib-orm-imports-entities-only', file: 'lib/orm.ts', source: "import '../domain/layer-rules-target';\n" },
  {
    rule: 'dev-tooling-imports-lib-only',
    file: 'dev/planted.ts',
    source: "import { target } from '../domain/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'product-imports-no-dev-or-test-code',
    file: 'api/planted-dev.ts',
    source: "import { target } from '../dev/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'product-imports-no-dev-or-test-code',
    file: 'worker/planted-test.ts',
    source: "import { target } from '../test/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'entities-import-lib-only',
    file: 'entities/planted.ts',
    source: "import { target } from '../domain/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'domain-imports-lib-entities-contracts',
    file: 'domain/planted-api.ts',
    source: "import { target } from '../api/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'domain-imports-lib-entities-contracts',
    file: 'domain/planted-activities.ts',
    source: "import type { Target } from '../activities/layer-rules-target';\nexport const x: Target = 'x';\n",
  },
  {
    rule: 'workflows-deterministic',
    file: 'workflows/planted-lib.ts',
    source: "import { target } from '../lib/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'workflows-deterministic',
    file: 'workflows/planted-node.ts',
    source: "import { readFileSync } from 'node:fs';\nexport const x = readFileSync;\n",
  },
  {
    rule: 'workflows-deterministic',
    file: 'workflows/planted-client.ts',
    source: "import { Client } from '@temporalio/client';\nexport const x = Client;\n",
  },
  {
    rule: 'workflows-import-no-api-or-entities',
    file: 'workflows/planted-entities.ts',
    source: "import type { Target } from '../entities/layer-rules-target';\nexport const x: Target = 'x';\n",
  },
  {
    rule: 'workflow-contracts-are-leaves',
    file: 'workflows/contracts/planted.ts',
    source: "import type { Target } from '../layer-rules-target.workflow';\nexport const x: Target = 'x';\n",
  },
  {
    rule: 'workflow-bodies-only-in-the-worker',
    file: 'domain/planted-workflow.ts',
    source: "import { target } from '../workflows/layer-rules-target.workflow';\nexport const x = target;\n",
  },
  {
    rule: 'workflow-bodies-only-in-the-worker',
    file: 'api/planted-workflow.ts',
    source: "import { target } from '../workflows/layer-rules-target.workflow';\nexport const x = target;\n",
  },
  {
    rule: 'api-imports-no-activities',
    file: 'api/planted-activities.ts',
    source: "import { target } from '../activities/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'activities-import-no-api',
    file: 'activities/planted-api.ts',
    source: "import type { Target } from '../api/layer-rules-target';\nexport const x: Target = 'x';\n",
  },
  {
    rule: 'host-imports-only-the-contract',
    file: 'host/planted-domain.ts',
    source: "import { target } from '../domain/layer-rules-target';\nexport const x = target;\n",
  },
  {
    rule: 'host-imports-only-the-contract',
    file: 'host/planted-lib.ts',
    source: "import { target } from '../lib/layer-rules-target';\nexport const x = target;\n",
  },
  // What the host shares must not bring the rest of lib/ with it: an import added to the real contract.
  { rule: 'host-contract-is-a-leaf', file: 'lib/host-contract.ts', source: "import './layer-rules-target';\n" },
  {
    rule: 'control-plane-imports-no-host',
    file: 'worker/planted-host.ts',
    source: "import { target } from '../host/layer-rules-target';\nexport const x = target;\n",
  },
  // The cycles' other halves are in CYCLE_HALVES: one at run time, one of `import type` only.
  { rule: 'no-circular', file: 'lib/planted-cycle-a.ts', source: "import { b } from './planted-cycle-b';\nexport const a = () => b;\n" },
  {
    rule: 'no-circular',
    file: 'lib/planted-type-cycle-a.ts',
    source: "import type { B } from './planted-type-cycle-b';\nexport interface A { b?: B }\n",
  },
];
const CYCLE_HALVES = [
  { file: 'lib/planted-cycle-b.ts', source: "import { a } from './planted-cycle-a';\nexport const b = () => a;\n" },
  { file: 'lib/planted-type-cycle-b.ts', source: "import type { A } from './planted-type-cycle-a';\nexport interface B { a?: A }\n" },
];

/** Imports the rules allow: no violation may come from these files. */
const ALLOWED: { file: string; source: string }[] = [
  {
    // Domain builds on lib/ and entities/, and reaches workflows through their contracts (both
    // spellings) or, for a typed start, `import type` of the workflow function.
    file: 'domain/allowed.ts',
    source: [
      "import { target as lib } from '../lib/layer-rules-target';",
      "import { target as entities } from '../entities/layer-rules-target';",
      "import { target as contract } from '../workflows/contracts/layer-rules-target';",
      "import { target as dotContract } from '../workflows/layer-rules-target.contract';",
      "import type { Target } from '../workflows/layer-rules-target.workflow';",
      'export const x: Target = [lib, entities, contract, dotContract].join();',
      '',
    ].join('\n'),
  },
  {
    // A workflow loads its SDK, other workflow files and contracts, and only types from elsewhere.
    file: 'workflows/allowed.workflow.ts',
    source: [
      "import { sleep } from '@temporalio/workflow';",
      "import { target as contract } from './contracts/layer-rules-target';",
      "import { target as body } from './layer-rules-target.workflow';",
      "import type { Target as Activities } from '../activities/layer-rules-target';",
      "import type { Target as Lib } from '../lib/layer-rules-target';",
      'export async function allowed(): Promise<Activities | Lib> { await sleep(1); return contract + body; }',
      '',
    ].join('\n'),
  },
  {
    // The host imports what it shares with the control plane, and its own files.
    file: 'host/allowed.ts',
    source: [
      "import { HOST_TOOLS } from '../lib/host-contract';",
      "import { splitCommandLine } from '../lib/tool-commands';",
      "import { toIp } from '../lib/ssrf-address';",
      "import { target } from './layer-rules-target';",
      'export const x = [HOST_TOOLS, splitCommandLine, toIp, target];',
      '',
    ].join('\n'),
  },
  // The worker is the one process that loads workflow bodies.
  { file: 'worker/allowed.ts', source: "import { target } from '../workflows/layer-rules-target.workflow';\nexport const x = target;\n" },
];

describe('layer rules (.dependency-cruiser.cjs)', () => {
  let copy: string;
  let planted: Report;

  beforeAll(async () => {
    copy = mkdtempSync(path.join(tmpdir(), 'layer-rules-'));
    for (const folder of FOLDERS) {
      if (!existsSync(path.join(ROOT, folder))) continue;
      cpSync(path.join(ROOT, folder), path.join(copy, folder), {
        recursive: true,
        filter: (source) => !source.includes(`${path.sep}node_modules`),
      });
    }
    cpSync(path.join(ROOT, 'tsconfig.json'), path.join(copy, 'tsconfig.json'));
    symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(copy, 'node_modules'));
    const write = (file: string, source: string) => {
      mkdirSync(path.dirname(path.join(copy, file)), { recursive: true });
      // Into a real file: appended (an import among its imports); a new file: written.
      appendFileSync(path.join(copy, file), source);
    };
    for (const file of TARGETS) write(file, "export const target = 'target';\nexport type Target = string;\n");
    for (const { file, source } of [...PLANTED, ...CYCLE_HALVES, ...ALLOWED]) write(file, source);
    planted = await cruise(copy);
  }, 120_000);

  afterAll(() => {
    if (copy) rmSync(copy, { recursive: true, force: true });
  });

  it.each(PLANTED)('$rule catches $file', ({ rule, file }) => {
    // A cycle is reported once, from whichever of its modules dependency-cruiser met first.
    const involves = (v: Violation) => v.from === file || (v.cycle ?? []).some((m) => m.name === file);
    expect(planted.violations.filter((v) => v.rule.name === rule && involves(v)).map((v) => [v.rule.name, v.rule.severity])).toContainEqual(
      [rule, 'error'],
    );
  });

  it('reports nothing from imports the rules allow', () => {
    const files = ALLOWED.map((a) => a.file);
    expect(planted.modules).toEqual(expect.arrayContaining(files));
    expect(planted.violations.filter((v) => files.includes(v.from)).map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  });

  it('finds no error in the real tree', async () => {
    const { violations } = await cruise(ROOT);
    expect(violations.filter((v) => v.rule.severity === 'error').map((v) => `${v.rule.name}: ${v.from} → ${v.to}`)).toEqual([]);
  }, 120_000);
});
