/**
 * Overhead benchmark: the paper's Figures 3 and 4. One single-threaded
 * client calls one replica that checks whether an integer is prime (one
 * call in flight), through each variant; variants run in interleaved
 * batches (A B C ... A B C ...), each in its own processes, so that machine
 * drift hits them all alike. Writes bench/results/overhead.{json,md,svg}.
 */
import { Command } from 'commander';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { renderSvg } from './lib/charts';
import { decodeHistogram, histogram, machine, Progress, ratio, RESULTS_DIR, say, summarize, writeResults, type LatencySummary } from './lib/common';
import { ensureNginx, startNginx } from './lib/nginx';
import { PRIME } from './lib/prime';
import { startBalancerProcess, Worker, runBenchCommand, type BalancerLaunch } from './lib/processes';
import { pythonGrpcVersion, startPythonClient } from './lib/python';
import { xdsBootstrap } from '../src/balancer/xds/bootstrap';

export const VARIANTS = [
  'direct',
  'per_session',
  'per_request',
  'per_request_direct',
  'on_demand',
  'peer_grpc_round_robin',
  'peer_grpc_weighted_round_robin',
  'peer_nginx',
  'xds_node',
  'direct_python',
  'xds_python',
] as const;
/**
 * A/B variant, run only with --compare-balancer: per_request with the
 * balancer of another build (e.g. the relay code before a change), in the
 * same interleaved rounds as per_request.
 */
export const COMPARE_VARIANT = 'per_request_compare';
type Variant = (typeof VARIANTS)[number] | typeof COMPARE_VARIANT;

const DESCRIPTIONS: Record<Exclude<Variant, typeof COMPARE_VARIANT>, string> = {
  direct: 'client -> replica, no balancer, no rebind (the limit)',
  per_session: 'client -> balancer once (forward), then direct; replica attached',
  per_request: 'per-request group, plain client (no rebind options): every call relayed by the balancer',
  per_request_direct:
    "per-request group, rebind-aware client (clientOptions()): the balancer binds it to every member of the group weighted by capacity (one member here) and it calls them directly, spreading its calls itself; the served column shows none is relayed",
  on_demand: 'forward + load reports + analyzer (minimum_dispersion) active',
  peer_grpc_round_robin: 'grpc-js built-in round_robin over the replica list',
  peer_grpc_weighted_round_robin: 'grpc-js weighted_round_robin fed by ORCA reports from a rebind replica',
  peer_nginx: 'nginx grpc_pass (least_conn) as a per-request proxy',
  xds_node:
    "Node client with @grpc/grpc-js-xds (own process: one xDS node, one bootstrap), target xds:///bench: binding by ADS/EDS from the balancer's control port, load reports over LRS, then direct calls; on-demand group (minimum_dispersion)",
  direct_python: "Python client (Debian's python3-grpcio, gRPC C core, stub-free) -> replica, no balancer: the Python baseline",
  xds_python: 'Python client (python3-grpcio) through xDS, target xds:///bench: as xds_node, on-demand group (minimum_dispersion)',
};

/** Each variant's baseline for the ratio columns: the direct client of its own language (a Python call costs more than a Node one). */
function baselineOf(key: string): Variant {
  return key.endsWith('_python') ? 'direct_python' : 'direct';
}

interface Ready {
  key: Variant;
  client: Worker;
  /** The replica of a variant with a rebind balancer: asked at the end how the calls reached it. */
  replica?: Worker;
  /** The processes that relay or answer the variant's calls (a rebind balancer, nginx's master and worker), whose CPU time per call is measured (Linux /proc). */
  proxyPids?: number[];
  /** The replica's process (every variant but the Python ones' has one), whose CPU time per call is measured. */
  replicaPid?: number;
  stop: () => Promise<void>;
  notes?: string;
}

interface Skipped {
  key: Variant;
  skipped: string;
}

/** How the benchmark starts its balancers (--compare-balancer, --balancer-node-args). */
interface BalancerLaunches {
  /** Every variant's balancer: this build, with these node flags. */
  main: BalancerLaunch;
  /** The compare variant's balancer: another build's CLI. */
  compare: BalancerLaunch;
}

async function setup(key: Variant, tmp: string, launches: BalancerLaunches): Promise<Ready | Skipped> {
  const seen: { replica?: Worker } = {};
  const made = await setupVariant(key, tmp, launches, seen);
  if ('client' in made && seen.replica?.process.pid !== undefined) made.replicaPid = seen.replica.process.pid;
  return made;
}

/** Starts a variant's processes; `seen.replica`: the replica it started, if any (its CPU time is measured). */
async function setupVariant(key: Variant, tmp: string, launches: BalancerLaunches, seen: { replica?: Worker }): Promise<Ready | Skipped> {
  const stops: (() => Promise<void>)[] = [];
  const stop = async () => {
    for (const s of stops.reverse()) await s();
  };
  let replicaWorker: Worker | undefined;
  const replica = async (mode: 'plain' | 'rebind', balancer?: string) => {
    const { worker, ready } = await Worker.start(`${key}-replica`, 'prime-replica.js', ['--name', 'r1', '--mode', mode, ...(balancer ? ['--balancer', balancer, '--group', 'bench'] : [])]);
    stops.push(() => worker.stop());
    replicaWorker = worker;
    seen.replica = worker;
    return String(ready['address']);
  };
  const client = async (mode: string, target: string) => {
    const { worker } = await Worker.start(`${key}-client`, 'prime-client.js', ['--mode', mode, '--target', target]);
    stops.push(() => worker.stop());
    return worker;
  };
  const balancer = async (granularity: string, strategy: string) => {
    const file = path.join(tmp, `${key}.json`);
    writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', groups: [{ name: 'bench', granularity, strategy, reportIntervalMs: 1000 }] }));
    const b = await startBalancerProcess(file, undefined, key === COMPARE_VARIANT ? launches.compare : launches.main);
    stops.push(() => b.stop());
    return b;
  };
  try {
    switch (key) {
      case 'direct':
        return { key, client: await client('direct', await replica('plain')), stop };
      case 'per_session':
      case 'per_request':
      case COMPARE_VARIANT:
      case 'per_request_direct':
      case 'on_demand': {
        const granularity = key === 'per_session' ? 'per-session' : key === 'on_demand' ? 'on-demand' : 'per-request';
        const b = await balancer(granularity, key === 'on_demand' ? 'minimum_dispersion' : 'round_robin');
        await replica('rebind', b.control);
        // per_request stays relayed whatever the balancer offers rebind-aware clients: its client is plain.
        return { key, client: await client(key === 'per_request' || key === COMPARE_VARIANT ? 'plain' : 'rebind', b.data), replica: replicaWorker, proxyPids: [b.pid], stop };
      }
      case 'peer_grpc_round_robin':
        return { key, client: await client('grpc_round_robin', `ipv4:${await replica('plain')}`), stop };
      case 'peer_grpc_weighted_round_robin': {
        const b = await balancer('per-session', 'round_robin');
        return { key, client: await client('grpc_wrr', `ipv4:${await replica('rebind', b.control)}`), stop };
      }
      case 'xds_node':
      case 'direct_python':
      case 'xds_python': {
        const python = key !== 'xds_node' ? pythonGrpcVersion() : null;
        if (typeof python === 'object' && python !== null) {
          await stop();
          return { key, skipped: python.missing };
        }
        const notes = python !== null ? `python3-grpcio ${python}` : undefined;
        if (key === 'direct_python') {
          const worker = await startPythonClient(`${key}-client`, `ipv4:${await replica('plain')}`);
          stops.push(() => worker.stop());
          return { key, client: worker, stop, notes };
        }
        const b = await balancer('on-demand', 'minimum_dispersion');
        await replica('rebind', b.control);
        const env = { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(xdsBootstrap(b.control, 'bench')), GRPC_XDS_BOOTSTRAP: '' };
        let worker: Worker;
        if (key === 'xds_python') {
          worker = await startPythonClient(`${key}-client`, 'xds:///bench', env);
        } else {
          worker = (await Worker.start(`${key}-client`, 'prime-client.js', ['--mode', 'xds', '--target', 'xds:///bench'], env)).worker;
        }
        stops.push(() => worker.stop());
        return { key, client: worker, replica: replicaWorker, stop, notes };
      }
      case 'peer_nginx': {
        const nginx = await ensureNginx();
        if (typeof nginx === 'string') {
          await stop();
          return { key, skipped: nginx };
        }
        const n = await startNginx([await replica('plain')]);
        stops.push(() => n.stop());
        const master = n.process.pid;
        const proxyPids = master !== undefined ? [master, ...childrenOf(master)] : undefined;
        return { key, client: await client('plain', n.address), proxyPids, stop, notes: `nginx ${nginx.version}` };
      }
    }
  } catch (err) {
    await stop();
    return { key, skipped: `could not start: ${(err as Error).message}` };
  }
}

type Result =
  | (LatencySummary & {
      throughput_rps: number;
      calls: number;
      errors: number;
      /** The variant the ratios compare with: the direct client of the same language. */
      baseline: string;
      notes?: string;
      /** Variants with a rebind balancer: calls the replica served (warm-up included), straight from the client or relayed by the balancer. */
      served?: { direct: number; proxied: number };
      /** Each round's p50 (µs), in round order: paired per-round ratios hold up on a noisy machine better than the merged figures. */
      rounds_p50_us: number[];
      /** Linux: CPU time (user + system) per call over the measured rounds, µs, of the proxy (the rebind balancer of per_session, per_request(_compare), per_request_direct, on_demand; nginx's processes), the client and the replica. */
      cpu_us_per_call?: { proxy?: number; client?: number; replica?: number };
    })
  | { skipped: string };

async function chart(results: Record<string, Result>): Promise<string> {
  const rows = Object.entries(results).filter((e): e is [string, Exclude<Result, { skipped: string }>] => !('skipped' in e[1]));
  const latency = rows.flatMap(([variant, r]) => [
    { variant, percentile: 'p50', us: r.p50_us },
    { variant, percentile: 'p90', us: r.p90_us },
    { variant, percentile: 'p99', us: r.p99_us },
  ]);
  const jitter = rows.map(([variant, r]) => ({ variant, mean: r.mean_us, low: Math.max(0, r.mean_us - r.stddev_us), high: r.mean_us + r.stddev_us }));
  const throughput = rows.map(([variant, r]) => ({ variant, rps: r.throughput_rps }));
  const order = rows.map(([v]) => v);
  const x = { field: 'variant', type: 'nominal', sort: order, axis: { labelAngle: -35, title: null, labelLimit: 260 } };
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind overhead: one client, one replica, "is this integer prime" (paper Figs. 3-4)',
    hconcat: [
      {
        title: 'latency percentiles (µs)',
        width: 300,
        height: 220,
        data: { values: latency },
        mark: 'bar',
        encoding: { x, xOffset: { field: 'percentile' }, y: { field: 'us', type: 'quantitative', title: 'µs' }, color: { field: 'percentile', type: 'nominal' } },
      },
      {
        title: 'latency and jitter: mean ± stddev (µs)',
        width: 260,
        height: 220,
        data: { values: jitter },
        layer: [
          { mark: { type: 'rule' }, encoding: { x, y: { field: 'low', type: 'quantitative', title: 'µs' }, y2: { field: 'high' } } },
          { mark: { type: 'point', filled: true, size: 60 }, encoding: { x, y: { field: 'mean', type: 'quantitative' } } },
        ],
      },
      {
        title: 'throughput (calls/s, one call in flight)',
        width: 260,
        height: 220,
        data: { values: throughput },
        mark: 'bar',
        encoding: { x, y: { field: 'rps', type: 'quantitative', title: 'calls/s' } },
      },
    ],
  });
}

function markdown(json: { iterations: number; rounds: number; variants: Record<string, Result> }, command: string): string {
  const lines = [
    `# Overhead (paper Figures 3-4)`,
    '',
    `\`${command}\` — ${json.iterations} calls per variant in ${json.rounds} interleaved rounds, one call in flight, workload: is ${PRIME} prime (about 75 µs of CPU).`,
    '',
    '| variant | p50 µs | p90 µs | p99 µs | mean µs | stddev µs | calls/s | baseline | p50 / baseline | calls/s / baseline | served direct / proxied | proxy CPU µs / call |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const [key, r] of Object.entries(json.variants)) {
    if ('skipped' in r) {
      lines.push(`| ${key} | skipped: ${r.skipped} | | | | | | | | | | |`);
      continue;
    }
    const base = baselineOf(key);
    const b = json.variants[base];
    const d = b && !('skipped' in b) ? b : null;
    lines.push(
      `| ${key} | ${r.p50_us} | ${r.p90_us} | ${r.p99_us} | ${r.mean_us} | ${r.stddev_us} | ${r.throughput_rps} | ${d ? base : `${base} (not run)`} | ${d ? ratio(r.p50_us, d.p50_us) : '-'} | ${d ? ratio(r.throughput_rps, d.throughput_rps) : '-'} | ${r.served ? `${r.served.direct} / ${r.served.proxied}` : '-'} | ${r.cpu_us_per_call?.proxy ?? '-'} |`,
    );
  }
  lines.push(
    '',
    ...Object.entries(DESCRIPTIONS).map(([k, v]) => `- \`${k}\`: ${v}`),
    ...(COMPARE_VARIANT in json.variants ? [`- \`${COMPARE_VARIANT}\`: per_request with the balancer of another build (--compare-balancer), for A/B runs`] : []),
    '',
    'Target for `per_request_direct` (issue 12): calls/s / direct ≥ 0.95 and p50 / direct ≤ 1.05; `per_request` stays the relayed path of plain clients.',
    '',
    'baseline: the ratios compare each variant with the direct client of its own language: `direct_python` for the `*_python` variants, `direct` (Node) for the others. Target for `xds_node` and `xds_python` (issue 13): p50 / baseline ≤ 1.05 and calls/s / baseline ≥ 0.95.',
    '',
    'served direct / proxied: calls the replica served (warm-up included) that came straight from the client, and that the balancer relayed (they carry its rebind-proxied header); only for the variants with a rebind balancer.',
    '',
    'proxy CPU µs / call: user + system CPU time (Linux /proc, 10 ms ticks) over the measured rounds, per call, of the rebind balancer the client talks to, or of nginx (master and worker); the JSON has the client\'s and the replica\'s too (cpu_us_per_call).',
  );
  return lines.join('\n');
}

/** CPU time so far (ms) of a variant's proxy processes, client and replica; null for a part that has no process or where /proc is not there. */
function cpuOf(r: Ready): Record<'proxy' | 'client' | 'replica', number | null> {
  const sum = (pids: number[] | undefined) => {
    if (pids === undefined || pids.length === 0) return null;
    let ms = 0;
    for (const pid of pids) {
      const one = processCpuMs(pid);
      if (one === null) return null;
      ms += one;
    }
    return ms;
  };
  return { proxy: sum(r.proxyPids), client: sum(pidsOf(r.client)), replica: sum(r.replicaPid !== undefined ? [r.replicaPid] : undefined) };
}

function pidsOf(worker: Worker): number[] | undefined {
  return worker.process.pid !== undefined ? [worker.process.pid] : undefined;
}

/** The child processes of `pid` (nginx's worker), from /proc; [] where /proc is not there. */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter((x) => x !== '').map(Number);
  } catch {
    return [];
  }
}

/** User + system CPU time of process `pid` so far, ms; null where /proc is not there. */
function processCpuMs(pid: number): number | null {
  try {
    // Fields after the parenthesised command name: utime and stime are the 12th and 13th (stat fields 14, 15).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return null;
  }
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLOCK_TICKS_PER_S = 100;

/**
 * Per-round paired ratios (median over rounds of each round's p50 ratio) of
 * the relayed variants: per_request against direct and nginx, and against
 * per_request_compare when the run has it. Empty when the run has none of them.
 */
function pairedRatios(variants: Record<string, Result>): string {
  const rounds = (key: string) => {
    const v = variants[key];
    return v !== undefined && !('skipped' in v) ? v.rounds_p50_us : null;
  };
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const lines: string[] = [];
  for (const [a, b] of [
    ['per_request', 'direct'],
    [COMPARE_VARIANT, 'direct'],
    ['peer_nginx', 'direct'],
    ['per_request', COMPARE_VARIANT],
    ['per_request', 'peer_nginx'],
  ] as const) {
    const ra = rounds(a);
    const rb = rounds(b);
    if (ra === null || rb === null) continue;
    const perRound = ra.map((x, i) => x / rb[i]!);
    lines.push(`paired p50 ${a} / ${b}: median ${ratio(median(perRound), 1)} over ${perRound.length} rounds (min ${ratio(Math.min(...perRound), 1)}, max ${ratio(Math.max(...perRound), 1)})`);
  }
  for (const [key, v] of Object.entries(variants)) {
    if ('skipped' in v || v.cpu_us_per_call === undefined) continue;
    const c = v.cpu_us_per_call;
    if (c.proxy === undefined && c.client === undefined) continue;
    lines.push(`CPU µs per call ${key}: proxy ${c.proxy ?? '-'}, client ${c.client ?? '-'}, replica ${c.replica ?? '-'}`);
  }
  return lines.join('\n');
}

async function main(opts: { quick?: boolean; iterations?: number; rounds?: number; out: string; variants?: string; compareBalancer?: string; balancerNodeArgs?: string }): Promise<void> {
  // --quick: BENCHMARKS.md suggests 10,000 calls, but one call takes about 1.2 ms
  // on this 2-core machine: 7 variants x 10,000 would not fit in 90 s, and the
  // CI smoke test runs it beside the rest of the suite.
  const iterations = opts.iterations ?? (opts.quick ? 4_000 : 200_000);
  const rounds = opts.rounds ?? (opts.quick ? 4 : 20);
  const warmup = opts.quick ? 200 : 2000;
  const perRound = Math.ceil(iterations / rounds);
  const accepted: readonly Variant[] = opts.compareBalancer !== undefined ? [...VARIANTS, COMPARE_VARIANT] : VARIANTS;
  const wanted = (opts.variants?.split(',') ?? [...accepted]) as Variant[];
  const unknown = wanted.filter((w) => !accepted.includes(w));
  if (unknown.length > 0) throw new Error(`unknown variant(s) ${unknown.join(', ')}; accepted: ${accepted.join(', ')}${opts.compareBalancer === undefined ? ` (${COMPARE_VARIANT} needs --compare-balancer)` : ''}`);
  if (opts.compareBalancer !== undefined && !existsSync(opts.compareBalancer)) throw new Error(`--compare-balancer: no such file ${opts.compareBalancer} (the compiled CLI entry, e.g. /tmp/old/dist/src/cli/main.js)`);
  const execArgv = opts.balancerNodeArgs?.split(' ').filter((a) => a !== '') ?? [];
  const launches: BalancerLaunches = { main: { execArgv }, compare: { cli: opts.compareBalancer, execArgv } };
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-overhead-'));
  const setups: (Ready | Skipped)[] = [];
  say(`overhead: ${iterations} calls per variant, ${rounds} rounds of ${perRound}, warm-up ${warmup}`);
  for (const key of wanted) setups.push(await setup(key, tmp, launches));
  const ready = setups.filter((s): s is Ready => 'client' in s);
  const progress = new Progress('overhead', ready.length * (rounds + 1));
  for (const r of ready) {
    await r.client.request({ type: 'batch', n: warmup });
    progress.tick(`warm-up ${r.key}`);
  }
  const merged = new Map(ready.map((r) => [r.key, { h: histogram(), elapsedMs: 0, calls: 0, errors: 0, roundsP50: [] as number[], cpuMs: { proxy: 0, client: 0, replica: 0 } as Record<'proxy' | 'client' | 'replica', number | null> }]));
  for (let round = 0; round < rounds; round++) {
    // Rotate the order each round so that no variant always runs first or last.
    const order = ready.map((_, i) => ready[(i + round) % ready.length]!);
    for (const r of order) {
      const cpuBefore = cpuOf(r);
      const reply = await r.client.request({ type: 'batch', n: perRound });
      if (reply.type === 'error') throw new Error(`${r.key}: ${String(reply['error'])}`);
      const acc = merged.get(r.key)!;
      const cpuAfter = cpuOf(r);
      for (const part of ['proxy', 'client', 'replica'] as const) {
        const [before, after, sum] = [cpuBefore[part], cpuAfter[part], acc.cpuMs[part]];
        acc.cpuMs[part] = before === null || after === null || sum === null ? null : sum + (after - before);
      }
      // Node workers send an HDR histogram; the Python worker its raw latencies (µs).
      const batch = histogram();
      if (Array.isArray(reply['latenciesUs'])) for (const us of reply['latenciesUs'] as number[]) batch.recordValue(us);
      else batch.add(decodeHistogram(String(reply['histogram'])));
      acc.h.add(batch);
      acc.roundsP50.push(batch.getValueAtPercentile(50));
      acc.elapsedMs += Number(reply['elapsedMs']);
      acc.calls += perRound;
      acc.errors += Number(reply['errors']);
      progress.tick(`round ${round + 1}/${rounds} ${r.key}`);
    }
  }
  progress.stop();
  const variants: Record<string, Result> = {};
  for (const s of setups) {
    if ('skipped' in s) {
      variants[s.key] = { skipped: s.skipped };
      continue;
    }
    const acc = merged.get(s.key)!;
    const served = s.replica ? await s.replica.request({ type: 'served' }) : null;
    variants[s.key] = {
      ...summarize(acc.h),
      throughput_rps: Math.round((acc.calls - acc.errors) / (acc.elapsedMs / 1000)),
      calls: acc.calls,
      errors: acc.errors,
      baseline: baselineOf(s.key),
      ...(s.notes ? { notes: s.notes } : {}),
      ...(served ? { served: { direct: Number(served['served']) - Number(served['proxied']), proxied: Number(served['proxied']) } } : {}),
      rounds_p50_us: acc.roundsP50,
      cpu_us_per_call: Object.fromEntries(
        (['proxy', 'client', 'replica'] as const).flatMap((part) => {
          const ms = acc.cpuMs[part];
          return ms === null ? [] : [[part, Math.round((ms * 1000) / acc.calls)]];
        }),
      ),
    };
  }
  for (const s of ready) await s.stop();
  rmSync(tmp, { recursive: true, force: true });
  const json = {
    iterations: perRound * rounds,
    machine: machine(),
    workload: { rpc: 'bench.v1.Prime/IsPrime', number: PRIME, note: 'naive trial division, about 75 µs of CPU' },
    rounds,
    warmup,
    variants,
  };
  const command = `npm run bench:overhead${opts.quick ? ' -- --quick' : ''}`;
  const files = writeResults(opts.out, 'overhead', json, markdown(json, command), await chart(variants));
  say(markdown(json, command));
  const paired = pairedRatios(variants);
  if (paired !== '') say(paired);
  say(`wrote ${files.join(', ')}`);
}

const program = new Command('bench:overhead')
  .description('Latency/throughput overhead of each binding granularity and of the peers (paper Figs. 3-4).')
  .option('--quick', 'CI smoke size: 4,000 calls per variant in 4 rounds (under 90 s)')
  .option('--iterations <n>', 'calls per variant (default 200,000; --quick 4,000)', (v) => Number(v))
  .option('--rounds <n>', 'interleaved rounds (default 20; --quick 4)', (v) => Number(v))
  .option('--variants <list>', `comma-separated subset of ${VARIANTS.join(', ')}`)
  .option('--compare-balancer <main.js>', `adds variant ${COMPARE_VARIANT}: per_request with the balancer CLI of another build (A/B runs of relay changes)`)
  .option('--balancer-node-args <flags>', 'extra node flags for the balancer processes, space-separated (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof")')
  .option('--out <dir>', 'where to write overhead.{json,md,svg}', RESULTS_DIR);

runBenchCommand(program, main);
