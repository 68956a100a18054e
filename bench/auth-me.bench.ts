/**
 * Cost of authentication + ability building: GET /api/auth/me against GET /api/health on the
 * same server, in the same run. /api/health does one PostgreSQL round trip and one Temporal
 * round trip; /api/auth/me verifies the JWT, checks the session (one PK lookup), builds the
 * CASL ability, loads the user with its organisation and packs the rules.
 * Target: me/health per-request cost < 2.
 */
import autocannon from 'autocannon';
import { startBenchStack } from './stack';

const DURATION_S = Number(process.argv.find((a) => a.startsWith('--duration='))?.slice(11) ?? 5);
const CONNECTIONS = 10;

interface Sample {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function load(url: string, headers: Record<string, string> = {}, duration = DURATION_S): Promise<Sample> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration, headers });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

function merge(samples: Sample[]): Sample {
  const avg = (f: (s: Sample) => number) => samples.reduce((sum, s) => sum + f(s), 0) / samples.length;
  return { rps: avg((s) => s.rps), p50: avg((s) => s.p50), p99: avg((s) => s.p99), errors: samples.reduce((n, s) => n + s.errors, 0) };
}

export async function benchAuthMe(): Promise<{ ratio: number; pass: boolean }> {
  const stack = await startBenchStack();
  try {
    const base = stack.api.url;
    const reg = await fetch(`${base}/api/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'bench@example.test', password: 'bench password 123', name: 'Bench', organizationName: 'Bench Org' }),
    });
    const { accessToken } = (await reg.json()) as { accessToken: string };
    const auth = { authorization: `Bearer ${accessToken}` };

    // Warm-up, then interleave the two routes so drift in the machine hits both alike.
    await load(`${base}/api/health`, {}, 1);
    await load(`${base}/api/auth/me`, auth, 1);
    const health: Sample[] = [];
    const me: Sample[] = [];
    for (let round = 0; round < 2; round++) {
      health.push(await load(`${base}/api/health`));
      me.push(await load(`${base}/api/auth/me`, auth));
    }
    const h = merge(health);
    const m = merge(me);
    const ratio = h.rps / m.rps;
    const p99Ratio = m.p99 / h.p99;
    const fmt = (name: string, s: Sample) =>
      `${name.padEnd(16)} ${s.rps.toFixed(0).padStart(7)} req/s   p50 ${s.p50.toFixed(1).padStart(6)} ms   p99 ${s.p99.toFixed(1).padStart(6)} ms   errors ${s.errors}`;
    process.stdout.write(
      [
        `auth-me bench: ${CONNECTIONS} connections, 2 x ${DURATION_S} s per route, interleaved`,
        fmt('GET /api/health', h),
        fmt('GET /api/auth/me', m),
        `per-request cost ratio me/health = ${ratio.toFixed(2)} (target < 2)   p99 ratio = ${p99Ratio.toFixed(2)}`,
        '',
      ].join('\n'),
    );
    // The baseline route may shed a request under load (its Temporal probe); only /me must be clean.
    return { ratio, pass: ratio < 2 && m.errors === 0 };
  } finally {
    await stack.stop();
  }
}

if (require.main === module) {
  benchAuthMe()
    .then(({ pass }) => process.exit(pass ? 0 : 1))
    .catch((error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    });
}
