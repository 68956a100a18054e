import net from 'node:net';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';

/** A port nothing listens on now, with the next one free too (a test may give the next one to the Temporal SDK's metrics). */
export async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await listenOnce(0);
    if (port < 65535 && (await listenOnce(port + 1).catch(() => undefined))) return port;
  }
}

function listenOnce(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const bound = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(bound));
    });
  });
}

/**
 * A scrape of `url`, read by a Prometheus text-format parser (parse-prometheus-text-format:
 * a malformed line throws). Its family view folds a labelled histogram's series into one, so
 * samples are read line by line with the same parser, which keeps each line's labels.
 */
export async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(url);
  if (response.status !== 200) throw new Error(`scrape of ${url}: ${response.status}`);
  expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await response.text();
  const samples = text
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => {
      const [family] = parsePrometheusTextFormat(`${line}\n`);
      const sample = family?.metrics[0];
      // NaN is a valid sample value (prom-client writes `Nan` for a lag not measured yet).
      if (!family || !sample || sample.value === undefined || (Number.isNaN(Number(sample.value)) && !/^nan$/i.test(sample.value)))
        throw new Error(`not a sample line: ${line}`);
      return { name: family.name, labels: sample.labels ?? {}, value: Number(sample.value) };
    });
  return new Scrape(parsePrometheusTextFormat(text), samples, text);
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class Scrape {
  constructor(
    readonly families: ParsedFamily[],
    readonly samples: Sample[],
    readonly text: string,
  ) {}

  family(name: string): ParsedFamily | undefined {
    return this.families.find((f) => f.name === name);
  }

  /** The series of `name` (a histogram's: of `name_count`) with their labels. */
  series(name: string): Record<string, string>[] {
    return this.samples.filter((s) => s.name === name || s.name === `${name}_count`).map((s) => s.labels);
  }

  /** A counter's or gauge's value for the labels (0 when the series does not exist yet). */
  value(name: string, labels: Record<string, string> = {}): number {
    return this.samples.find((s) => s.name === name && matches(s.labels, labels))?.value ?? 0;
  }

  /** A histogram's observation count for the labels (0 when none yet). */
  count(name: string, labels: Record<string, string> = {}): number {
    return this.value(`${name}_count`, labels);
  }
}

function matches(have: Record<string, string>, want: Record<string, string>): boolean {
  return Object.entries(want).every(([k, v]) => have[k] === v);
}
