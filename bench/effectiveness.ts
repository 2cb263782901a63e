/**
 * Effectiveness benchmark: the paper's Figures 5 and 6. 4 replicas, 8
 * clients started together: clients 1, 3, 5, 7 send 100 calls/s, 2, 4, 6, 8
 * send 50 (open loop). Every run starts from round-robin bindings
 * (200/100/200/100 calls/s; 150 is ideal); at t = 0 the run's strategy takes
 * over. Per-replica load is the calls each replica served, sampled every
 * 250 ms. Writes bench/results/effectiveness.{json,md,svg}.
 */
import { Command } from 'commander';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { adminCall, adminClient } from '../src/cli/admin-client';
import { convergenceSeconds, round, steadyState, type SeriesRow } from '../src/sim/quality';
import { renderSvg } from './lib/charts';
import { machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { startBalancerProcess, Worker, type BalancerProcess, runBenchCommand } from './lib/processes';

interface RunSpec {
  key: string;
  description: string;
  /** Strategy the group switches to at t = 0 (on-demand), or null to stay per-session round-robin. */
  strategy: { name: string; params: Record<string, number> } | null;
  /** Clients balance by themselves with weighted_round_robin over ORCA instead of the balancer. */
  wrr?: boolean;
}

export const RUNS: RunSpec[] = [
  { key: 'per_session_round_robin', description: 'per-session round-robin: bindings never move (paper Fig. 5)', strategy: null },
  { key: 'on_demand_minimum_dispersion', description: 'on-demand minimum_dispersion, default parameters (paper Fig. 6)', strategy: { name: 'minimum_dispersion', params: {} } },
  {
    key: 'on_demand_least_loaded',
    description: 'on-demand least_loaded, critical threshold 160 calls/s (just above the ideal 150)',
    strategy: { name: 'least_loaded', params: { criticalThreshold: 160 } },
  },
  { key: 'on_demand_load_average', description: 'on-demand load_average, default parameters (TAO: advise beyond 80 % above average)', strategy: { name: 'load_average', params: {} } },
  { key: 'peer_grpc_weighted_round_robin', description: 'no balancer: grpc-js weighted_round_robin over the 4 replicas, weights from rebind ORCA reports', strategy: null, wrr: true },
];

const RATES = [100, 50, 100, 50, 100, 50, 100, 50];
const SAMPLE_MS = 250;

interface RunResult {
  description: string;
  config: Record<string, unknown>;
  convergence_s: number | null;
  steady: { max_over_mean: number; cv: number };
  rebinds: number;
  rebinds_after_convergence: number;
  calls: number;
  failed_calls: number;
  series: SeriesRow[];
}

async function runOne(spec: RunSpec, durationMs: number, reportIntervalMs: number, tmp: string, progress: Progress): Promise<RunResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const file = path.join(tmp, `${spec.key}.json`);
    writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: '127.0.0.1:0', groups: [{ name: 'bench', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs }] }));
    const balancer: BalancerProcess = await startBalancerProcess(file);
    stops.push(() => balancer.stop());
    // Each replica pushes (its clock, calls served so far); the series interpolates them at exact sample times.
    const counts: [number, number][][] = [[], [], [], []];
    // Processes start in parallel; only the binding calls below need an order.
    const replicas = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const { worker, ready } = await Worker.start(`r${i + 1}`, 'prime-replica.js', ['--name', `r${i + 1}`, '--mode', 'rebind', '--balancer', balancer.control, '--group', 'bench', '--push-ms', String(SAMPLE_MS / 5)]);
        worker.onEvent = (m) => {
          if (m.type === 'served') counts[i]!.push([Number(m['t']), Number(m['served'])]);
        };
        stops.push(() => worker.stop());
        return { worker, address: String(ready['address']) };
      }),
    );
    const target = spec.wrr ? `ipv4:${replicas.map((r) => r.address).join(',')}` : balancer.data;
    const rebindTimes: number[] = [];
    const clients = await Promise.all(
      RATES.map(async (_, i) => {
        const { worker } = await Worker.start(`c${i + 1}`, 'prime-client.js', ['--mode', spec.wrr ? 'grpc_wrr' : 'rebind', '--target', target]);
        worker.onEvent = (m) => {
          if (m.type === 'rebind') rebindTimes.push(Number(m['t']));
        };
        stops.push(() => worker.stop());
        return worker;
      }),
    );
    // One call each, in order: round-robin binds clients i and i + 4 to the same replica (200/100/200/100).
    if (!spec.wrr) for (const c of clients) await c.request({ type: 'first' });
    const admin = adminClient(balancer.control);
    stops.push(async () => admin.close());
    // The clients run for a warm-up first (as in the paper, balancing takes over running clients),
    // so that the replicas' reports show the load before the strategy acts on them.
    const warmupMs = 4 * reportIntervalMs;
    // A second past the measured window, so that its last sample is fully loaded.
    const loads = clients.map((c, i) => c.request({ type: 'open-loop', rate: RATES[i], durationMs: warmupMs + durationMs + 1000 }));
    await new Promise((r) => setTimeout(r, warmupMs));
    if (spec.strategy !== null) {
      await adminCall(admin, balancer.control, 'SetStrategy', { group: 'bench', strategy: spec.strategy.name, paramsJson: JSON.stringify(spec.strategy.params) });
    }
    const t0 = Date.now();
    if (spec.strategy !== null) await adminCall(admin, balancer.control, 'SetGranularity', { group: 'bench', granularity: 'on-demand' });
    const ticker = setInterval(() => progress.tick(spec.key), SAMPLE_MS);
    const replies = await Promise.all(loads);
    clearInterval(ticker);
    const series = resample(counts, t0, durationMs);
    const convergence = convergenceSeconds(series);
    const durationS = durationMs / 1000;
    return {
      description: spec.description,
      config: spec.wrr
        ? { client_policy: 'weighted_round_robin', enable_oob_load_report: true, oob_load_reporting_period: '1s', warmup_ms: warmupMs }
        : { initial: 'per-session round_robin', warmup_ms: warmupMs, from_t0: spec.strategy ? { granularity: 'on-demand', strategy: spec.strategy } : 'unchanged', report_interval_ms: reportIntervalMs },
      convergence_s: convergence,
      steady: steadyState(series, durationS / 2),
      rebinds: rebindTimes.filter((t) => t >= t0).length,
      rebinds_after_convergence: rebindTimes.filter((t) => t >= t0 && (convergence === null || (t - t0) / 1000 > convergence)).length,
      calls: replies.reduce((s, r) => s + Number(r['sent'] ?? 0), 0),
      failed_calls: replies.reduce((s, r) => s + Number(r['failed'] ?? 0), 0),
      series,
    };
  } finally {
    for (const s of stops.reverse()) await s();
  }
}

/** Calls served by one replica up to time t, interpolated between its pushes. */
function servedAt(points: [number, number][], t: number): number {
  if (points.length === 0 || t <= points[0]![0]) return points[0]?.[1] ?? 0;
  for (let i = 1; i < points.length; i++) {
    const [t1, c1] = points[i]!;
    if (t <= t1) {
      const [t0, c0] = points[i - 1]!;
      return c0 + ((c1 - c0) * (t - t0)) / Math.max(1, t1 - t0);
    }
  }
  return points[points.length - 1]![1];
}

/** Per-replica calls/s in consecutive SAMPLE_MS windows from t0. */
function resample(counts: [number, number][][], t0: number, durationMs: number): SeriesRow[] {
  const series: SeriesRow[] = [];
  for (let end = SAMPLE_MS; end <= durationMs; end += SAMPLE_MS) {
    const from = t0 + end - SAMPLE_MS;
    const to = t0 + end;
    series.push([round(end / 1000, 3), ...counts.map((points) => round(((servedAt(points, to) - servedAt(points, from)) * 1000) / SAMPLE_MS, 1))]);
  }
  return series;
}

async function chart(runs: Record<string, RunResult>): Promise<string> {
  const values = Object.entries(runs).flatMap(([run, r]) => r.series.flatMap((row) => row.slice(1).map((rps, i) => ({ run, t: row[0], replica: `r${i + 1}`, rps }))));
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind effectiveness: per-replica load over time (paper Figs. 5-6); ideal 150 calls/s',
    data: { values },
    facet: { row: { field: 'run', type: 'nominal', title: null, sort: Object.keys(runs) } },
    spec: {
      width: 560,
      height: 120,
      layer: [
        {
          mark: { type: 'line', strokeWidth: 1.3 },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 'seconds since the strategy took over' },
            y: { field: 'rps', type: 'quantitative', title: 'calls/s', scale: { zero: true } },
            color: { field: 'replica', type: 'nominal' },
          },
        },
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { datum: 150 } } },
      ],
    },
  });
}

function markdown(json: { report_interval_ms: number; runs: Record<string, RunResult> }, command: string, durationS: number): string {
  const lines = [
    '# Effectiveness (paper Figures 5-6)',
    '',
    `\`${command}\` — 4 replicas, 8 open-loop clients at 100/50/100/50/... calls/s, report interval ${json.report_interval_ms} ms. Every run starts from round-robin bindings (200/100/200/100); the clients run for a warm-up of 4 report intervals, then the run's strategy takes over at t = 0 and the run is measured for ${durationS} s. Ideal: 150 calls/s per replica.`,
    '',
    '| run | converged (s) | steady max/mean | steady cv | re-binds | after convergence | calls | failed |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...Object.entries(json.runs).map(
      ([key, r]) =>
        `| ${key} | ${r.convergence_s ?? 'never'} | ${r.steady.max_over_mean} | ${r.steady.cv} | ${r.rebinds} | ${r.rebinds_after_convergence} | ${r.calls} | ${r.failed_calls} |`,
    ),
    '',
    'converged: seconds until max/mean stays at or below 1.10 for the rest of the run; steady: over the last half of the run.',
    '',
    ...Object.entries(json.runs).map(([key, r]) => `- \`${key}\`: ${r.description}`),
  ];
  return lines.join('\n');
}

async function main(opts: { quick?: boolean; duration?: number; out: string; runs?: string }): Promise<void> {
  // --quick: BENCHMARKS.md suggests 20 s per run; 5 runs of 20 s would not fit in 90 s.
  const durationS = opts.duration ?? (opts.quick ? 8 : 60);
  const reportIntervalMs = opts.quick ? 500 : 1000;
  const wanted = opts.runs?.split(',') ?? RUNS.map((r) => r.key);
  const unknown = wanted.filter((w) => !RUNS.some((r) => r.key === w));
  if (unknown.length > 0) throw new Error(`unknown run(s) ${unknown.join(', ')}; accepted: ${RUNS.map((r) => r.key).join(', ')}`);
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-effectiveness-'));
  const specs = RUNS.filter((r) => wanted.includes(r.key));
  // --quick: 5 runs x (setup + warm-up + 10 s) stays under 90 s.
  const progress = new Progress('effectiveness', Math.ceil((specs.length * durationS * 1000) / SAMPLE_MS));
  const runs: Record<string, RunResult> = {};
  for (const spec of specs) {
    say(`run ${spec.key} (${durationS} s)`);
    runs[spec.key] = await runOne(spec, durationS * 1000, reportIntervalMs, tmp, progress);
  }
  progress.stop();
  rmSync(tmp, { recursive: true, force: true });
  const json = { machine: machine(), report_interval_ms: reportIntervalMs, ideal_rps: 150, duration_s: durationS, sample_ms: SAMPLE_MS, runs };
  const command = `npm run bench:effectiveness${opts.quick ? ' -- --quick' : ''}`;
  const md = markdown(json, command, durationS);
  const files = writeResults(opts.out, 'effectiveness', json, md, await chart(runs));
  say(md);
  say(`wrote ${files.join(', ')}`);
}

const program = new Command('bench:effectiveness')
  .description("How well each strategy balances the paper's uneven clients (Figs. 5-6).")
  .option('--quick', 'CI smoke size: 8 s per run, 500 ms reports (under 90 s)')
  .option('--duration <s>', 'seconds per run (default 60; --quick 8)', (v) => Number(v))
  .option('--runs <list>', `comma-separated subset of ${RUNS.map((r) => r.key).join(', ')}`)
  .option('--out <dir>', 'where to write effectiveness.{json,md,svg}', RESULTS_DIR);

runBenchCommand(program, main);
