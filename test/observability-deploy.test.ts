/**
 * The compose deployment and its observability profile (docker-compose.yml, deploy/), checked
 * against the real stack: every metric the Grafana dashboard queries is served by the API's, a
 * worker's or the Temporal SDK's /metrics, so no panel stays empty because of a misspelt or
 * renamed metric; the compose file parses, mounts only files that exist and runs Temporal from
 * its server image after the schema setup; Prometheus scrapes services and ports the compose
 * file defines, which are reachable from another container and never published on the host.
 * No Docker here: the compose file is read, not run (docs/metrics.md).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { loadTracingConfig } from '../lib/tracing-config';
import { waitFor } from './fleet';
import { createTestContext, type TestContext } from './harness';
import { freePortPair, scrape } from './metrics';

const ROOT = path.join(__dirname, '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** Series Prometheus makes itself for every target rather than scraping them. */
const PROMETHEUS_SYNTHETIC = new Set(['up']);

/** PromQL words that look like a metric name: aggregations (also written `sum by (x) (...)`), keywords, binary operators. */
const PROMQL_WORDS = new Set(
  'sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio by without on ignoring group_left group_right bool and or unless offset atan2 inf nan'.split(
    ' ',
  ),
);

/**
 * The metric names a PromQL expression selects: label matchers, ranges and label lists (`by
 * (le, tool)`) are removed first, string literals before them (a regex matcher may hold braces);
 * what remains is a selector unless it is a function call, a keyword or part of a number.
 * `{__name__="x"}` selects x.
 */
function promqlMetricNames(expr: string): string[] {
  const names = new Set<string>();
  for (const [, name] of expr.matchAll(/__name__\s*=\s*"([^"]+)"/g)) names.add(name);
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/gi, ' ');
  for (const [, name, call] of bare.matchAll(/(?<![\w:.$])([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    if (!call && !PROMQL_WORDS.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}

/** Every family a scrape declares (`# TYPE name type`) with its type, and every sample's name. */
function servedFamilies(text: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const line of text.split('\n')) {
    const declared = /^# TYPE (\S+) (\S+)/.exec(line);
    if (declared) families.set(declared[1], declared[2]);
    else if (line && !line.startsWith('#')) {
      const sample = /^[A-Za-z_:][\w:]*/.exec(line)?.[0];
      if (sample && !families.has(sample)) families.set(sample, 'untyped');
    }
  }
  return families;
}

/**
 * The family a selected name belongs to: the name itself, or a histogram's `_bucket`, `_count`
 * or `_sum` series (a summary's `_count` and `_sum`). Only a histogram or a summary has those, so
 * a gauge that happens to end in `_count` is not stripped.
 */
function familyOf(name: string, served: Map<string, string>): string | undefined {
  if (served.has(name)) return name;
  const suffix = /_(bucket|count|sum)$/.exec(name);
  if (!suffix) return undefined;
  const base = name.slice(0, -suffix[0].length);
  const type = served.get(base);
  return type === 'histogram' || (type === 'summary' && suffix[1] !== 'bucket') ? base : undefined;
}

interface Panel {
  title: string;
  datasource?: { uid?: string };
  targets?: { expr?: string; datasource?: { uid?: string } }[];
}

function dashboardQueries(): { panel: string; expr: string; datasource?: string }[] {
  const dashboard = JSON.parse(read('deploy/grafana/mcp-fleet.json')) as { panels: Panel[] };
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      panel: panel.title,
      expr: target.expr ?? '',
      datasource: target.datasource?.uid ?? panel.datasource?.uid,
    })),
  );
}

describe('PromQL metric names', () => {
  it('are read through functions, aggregations, label matchers, ranges and label lists, and histogram series keep their suffix', () => {
    expect(
      promqlMetricNames(
        'histogram_quantile(0.95, sum by (le, tool) (rate(mcp_fleet_mcp_call_duration_seconds_bucket{tool=~"a|b}", x="by(y)"}[$__rate_interval])))',
      ),
    ).toEqual(['mcp_fleet_mcp_call_duration_seconds_bucket']);
    expect(
      promqlMetricNames(
        'sum(rate(a_count{status=~"5.."}[5m] offset 1h)) / ignoring(status) group_left sum without (x) (rate(b_total[1m])) * 1e3 > bool 2',
      ).sort(),
    ).toEqual(['a_count', 'b_total']);
    expect(promqlMetricNames('max(up) or vector(0) unless on(job) {__name__="c", job="x"}').sort()).toEqual(['c', 'up']);
    const served = new Map([
      ['h_seconds', 'histogram'],
      ['g_count', 'gauge'],
      ['s', 'summary'],
    ]);
    expect(['h_seconds_bucket', 'h_seconds_sum', 'g_count', 's_count', 's_bucket', 'g'].map((n) => familyOf(n, served))).toEqual([
      'h_seconds',
      'h_seconds',
      'g_count',
      's',
      undefined,
      undefined,
    ]);
  });
});

describe('the Grafana dashboard', () => {
  let ctx: TestContext;
  let child: ChildProcess | undefined;
  let stderr = '';

  beforeAll(async () => {
    ctx = await createTestContext({
      metrics: { api: { host: '127.0.0.1', port: await freePortPair() }, worker: { host: '127.0.0.1', port: 0, temporalPort: 0 } },
    });
  });
  afterAll(async () => {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child!.once('exit', r));
    }
    await ctx?.close();
  });

  it('queries only metrics the API, a worker and the Temporal SDK serve, from the provisioned data source', async () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThanOrEqual(7);
    const datasources = parse(read('deploy/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string }[] };
    for (const query of queries)
      expect({ panel: query.panel, datasource: query.datasource }).toEqual({
        panel: query.panel,
        datasource: datasources.datasources[0].uid,
      });

    // The real worker entry point, in a process of its own: the Temporal SDK's runtime (and its
    // Prometheus exporter) is installed once per process, so only a fresh process serves it.
    const port = await freePortPair();
    child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'worker', 'main.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        TEMPORAL_TASK_QUEUE: ctx.config.temporal.taskQueue,
        WORKER_METRICS_PORT: String(port),
        WORKER_TEMPORAL_METRICS_PORT: String(port + 1),
        WEBHOOK_OUTBOX: 'off',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const worker = await waitFor(() => scrape(`http://127.0.0.1:${port}/metrics`).catch(() => undefined), 60_000, 200).catch(() => {
      throw new Error(`the worker's /metrics never answered; its stderr: ${stderr}`);
    });
    // The SDK declares its worker families once the worker polls.
    const sdk = await waitFor(
      async () => {
        const s = await scrape(`http://127.0.0.1:${port + 1}/metrics`).catch(() => undefined);
        return s?.family('temporal_worker_task_slots_available') ? s : undefined;
      },
      60_000,
      200,
    ).catch(() => {
      throw new Error(`the Temporal SDK's metrics never declared its task slots; the worker's stderr: ${stderr}`);
    });
    const api = await scrape(ctx.metricsUrl!);

    const served = new Map([...servedFamilies(api.text), ...servedFamilies(worker.text), ...servedFamilies(sdk.text)]);
    const missing: string[] = [];
    for (const { panel, expr } of queries) {
      const names = promqlMetricNames(expr);
      expect({ panel, names: names.length > 0 }).toEqual({ panel, names: true });
      for (const name of names) {
        const family = familyOf(name, served);
        if (!family && !PROMETHEUS_SYNTHETIC.has(name)) missing.push(`${panel}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  }, 150_000);
});

interface ComposeService {
  image?: string;
  profiles?: string[];
  environment?: Record<string, string | number>;
  volumes?: (string | { type?: string; source?: string })[];
  ports?: (string | { target?: number; published?: string | number })[];
  depends_on?: Record<string, { condition: string }>;
}

interface ScrapeConfig {
  job_name: string;
  static_configs?: { targets: string[] }[];
  dns_sd_configs?: { names: string[]; type?: string; port: number }[];
}

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as { services: Record<string, ComposeService> };
  const services = compose.services;

  it('runs the worker with two malloc arenas and the environment every app service has', () => {
    expect(services.worker.environment).toMatchObject({ MALLOC_ARENA_MAX: '2', DATABASE_URL: services.api.environment?.DATABASE_URL });
    expect(services.api.environment?.MALLOC_ARENA_MAX).toBeUndefined();
  });

  it('mounts only files and folders that exist, and the observability profile has Prometheus, Grafana and Jaeger', () => {
    const sources = Object.entries(services).flatMap(([name, service]) =>
      (service.volumes ?? [])
        .map((volume) => (typeof volume === 'string' ? volume.split(':')[0] : volume.type === 'bind' ? volume.source : undefined))
        .filter((source): source is string => source !== undefined && /^\.{0,2}\//.test(source))
        .map((source) => ({ service: name, source, exists: existsSync(path.join(ROOT, source)) })),
    );
    expect(sources.map((s) => s.source)).toEqual(
      expect.arrayContaining([
        './deploy/prometheus/prometheus.yml',
        './deploy/grafana/provisioning/datasources',
        './deploy/grafana/provisioning/dashboards',
        './deploy/grafana/mcp-fleet.json',
      ]),
    );
    expect(sources.filter((s) => !s.exists)).toEqual([]);
    const profile = Object.entries(services)
      .filter(([, s]) => s.profiles?.includes('observability'))
      .map(([name]) => name)
      .sort();
    expect(profile).toEqual(['grafana', 'jaeger', 'prometheus']);
    // Prometheus and Jaeger have no login: their UIs are on the host's loopback only.
    for (const name of profile) {
      const ports = services[name].ports ?? [];
      expect({ name, ports: ports.length }).toEqual({ name, ports: 1 });
      expect({ name, port: ports[0] }).toEqual({ name, port: expect.stringMatching(/^127\.0\.0\.1:\d+:\d+$/) });
    }
    // The profile's Grafana loads the dashboard the provisioning points at.
    const provider = parse(read('deploy/grafana/provisioning/dashboards/mcp-fleet.yml')) as { providers: { options: { path: string } }[] };
    const mounted = (services.grafana.volumes ?? []).filter((v): v is string => typeof v === 'string').map((v) => v.split(':'));
    expect(mounted).toContainEqual(['./deploy/grafana/mcp-fleet.json', `${provider.providers[0].options.path}/mcp-fleet.json`, 'ro']);
  });

  it('has Prometheus scrape services of the compose file on ports they serve metrics on, bound for other containers and never published', () => {
    const config = parse(read('deploy/prometheus/prometheus.yml')) as { scrape_configs: ScrapeConfig[] };
    const targets = config.scrape_configs.flatMap((job) => [
      ...(job.static_configs ?? []).flatMap((c) =>
        c.targets.map((t) => ({ job: job.job_name, host: t.split(':')[0], port: t.split(':')[1] })),
      ),
      ...(job.dns_sd_configs ?? []).flatMap((c) => c.names.map((host) => ({ job: job.job_name, host, port: String(c.port) }))),
    ]);
    expect(targets.map((t) => t.host).sort()).toEqual(['api', 'temporal', 'worker', 'worker']);
    for (const { job, host, port } of targets) {
      const service = services[host];
      expect({ job, host, defined: service !== undefined }).toEqual({ job, host, defined: true });
      // The port is one the service is told to serve metrics on (METRICS_PORT=9464, PROMETHEUS_ENDPOINT=0.0.0.0:8000, ...).
      const values = Object.values(service.environment ?? {}).map(String);
      expect({ job, port, configured: values.some((v) => v === port || v.endsWith(`:${port}`)) }).toEqual({ job, port, configured: true });
      const published = (service.ports ?? []).map((p) => (typeof p === 'string' ? p.split(':').at(-1) : String(p.target)));
      expect({ job, port, published: published.includes(port) }).toEqual({ job, port, published: false });
    }
    // Loopback (the default) would be unreachable from Prometheus's container.
    expect(services.api.environment).toMatchObject({ METRICS_HOST: '0.0.0.0', METRICS_PORT: '9464' });
    expect(services.worker.environment).toMatchObject({
      WORKER_METRICS_HOST: '0.0.0.0',
      WORKER_METRICS_PORT: '9465',
      WORKER_TEMPORAL_METRICS_PORT: '9467',
    });
  });

  it('leaves tracing off unless OTEL_EXPORTER_OTLP_ENDPOINT is given, which the profile has a Jaeger for', () => {
    for (const name of ['api', 'worker']) {
      expect(services[name].environment?.OTEL_EXPORTER_OTLP_ENDPOINT).toBe('${OTEL_EXPORTER_OTLP_ENDPOINT:-}');
    }
    // Compose turns the unset variable into an empty value, which lib/tracing-config.ts reads as off.
    expect(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }).enabled).toBe(false);
    expect(loadTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' }).url).toBe('http://jaeger:4318/v1/traces');
    expect(services.jaeger.image).toMatch(/^jaegertracing\/jaeger:2\./);
  });

  it('runs the Temporal server image after the schema setup, not the deprecated auto-setup image, with matching admin tools', () => {
    const images = Object.values(services).map((s) => s.image ?? '');
    expect(images.filter((image) => image.startsWith('temporalio/auto-setup'))).toEqual([]);
    const server = /^temporalio\/server:(1\.29\.\d+)$/.exec(services.temporal.image ?? '');
    expect(server).not.toBeNull();
    for (const name of ['temporal-schema', 'temporal-search-attributes']) {
      expect(services[name].image).toMatch(new RegExp(`^temporalio/admin-tools:${server![1].replace(/\./g, '\\.')}(-|$)`));
    }
    expect(services.temporal.depends_on).toEqual({ 'temporal-schema': { condition: 'service_completed_successfully' } });
    expect(services.temporal.environment).toMatchObject({ DB: 'postgres12', PROMETHEUS_ENDPOINT: '0.0.0.0:8000' });
    // The server image registers no namespace: the one-shot that adds the search attributes creates `default` first.
    expect(read('docker-compose.yml')).toMatch(/temporal operator namespace create --namespace default/);
    for (const name of ['api', 'worker']) {
      expect(services[name].depends_on?.['temporal-search-attributes']).toEqual({ condition: 'service_completed_successfully' });
    }
  });
});
