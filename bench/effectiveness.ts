/**
 * Effectiveness benchmark, two scenarios:
 *   paper      the paper's Figures 5 and 6. 4 replicas, 8 clients started
 *              together: clients 1, 3, 5, 7 send 100 calls/s, 2, 4, 6, 8
 *              send 50 (open loop). Every run starts from round-robin
 *              bindings (200/100/200/100 calls/s; 150 is ideal); at t = 0
 *              the run's strategy takes over.
 *   few-heavy  issue 12: 2 clients of 400 calls/s on 8 replicas (100 is
 *              ideal), the way real gRPC clients are few multiplexed
 *              channels. The same runs, plus per-request groups for
 *              rebind-aware clients (a direct weighted binding once the
 *              balancer hands them one; proxied before) and for plain
 *              clients (proxied), beside the WRR peer.
 * Per-replica load is the calls each replica served, sampled every 250 ms;
 * each replica also counts the calls the balancer relayed to it, so a run
 * shows how calls reached the replicas. Writes
 * bench/results/effectiveness.{json,md,svg}: the JSON keeps the paper
 * scenario at the top level (as before this file had scenarios) and every
 * scenario under `scenarios`.
 */
import { Command } from 'commander';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { adminCall, adminClient } from '../src/cli/admin-client';
import { convergenceSeconds, round, steadyState, type SeriesRow } from '../src/sim/quality';
import { renderSvg } from './lib/charts';
import { cpuSeconds, machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { startBalancerProcess, Worker, type BalancerProcess, type WorkerMessage, runBenchCommand } from './lib/processes';
import { pythonGrpcVersion, startPythonClient } from './lib/python';
import { xdsBootstrap } from '../src/balancer/xds/bootstrap';

interface RunSpec {
  key: string;
  description: string;
  /** Strategy the group switches to at t = 0 (on-demand), or null to keep the group as it started. */
  strategy: { name: string; params: Record<string, number> } | null;
  /**
   * The clients' channels: `rebind` (clientOptions(), through the balancer),
   * `plain` (no rebind options, through the balancer's data port: always
   * proxied), `grpc_wrr` (no balancer: grpc-js weighted_round_robin over
   * ORCA straight to the replicas), `xds` (proxyless xDS clients, target
   * xds:///bench: the first XDS_PYTHON_CLIENTS are Python (python3-grpcio),
   * the rest Node (@grpc/grpc-js-xds), one process and one xDS node each).
   */
  client: 'rebind' | 'plain' | 'grpc_wrr' | 'xds';
  /** The group's granularity from the start; per-session round-robin when absent. */
  granularity?: 'per-request';
}

interface ScenarioSpec {
  key: string;
  /** One line for the markdown: what runs against what. */
  summary: string;
  replicas: number;
  /** Open-loop calls/s of each client, in start order. */
  rates: number[];
  /**
   * Balancer `limits` beyond the defaults. Every benchmark client calls from
   * 127.0.0.1, so the per-caller bound on proxied calls in flight (a defence
   * against one address hogging the proxy) would count two heavy clients as
   * one caller; real clients have their own addresses.
   */
  limits?: Record<string, number>;
  runs: RunSpec[];
}

/** Calls/s each replica would serve if the load were spread evenly. */
function idealRps(s: ScenarioSpec): number {
  return s.rates.reduce((a, b) => a + b, 0) / s.replicas;
}

/** The runs both scenarios share: the paper's strategies from round-robin bindings, and the WRR peer. */
function commonRuns(ideal: number, replicas: number): RunSpec[] {
  const critical = ideal + 10;
  return [
    { key: 'per_session_round_robin', description: 'per-session round-robin: bindings never move (paper Fig. 5)', strategy: null, client: 'rebind' },
    { key: 'on_demand_minimum_dispersion', description: 'on-demand minimum_dispersion, default parameters (paper Fig. 6)', strategy: { name: 'minimum_dispersion', params: {} }, client: 'rebind' },
    {
      key: 'on_demand_least_loaded',
      description: `on-demand least_loaded, critical threshold ${critical} calls/s (just above the ideal ${ideal})`,
      strategy: { name: 'least_loaded', params: { criticalThreshold: critical } },
      client: 'rebind',
    },
    { key: 'on_demand_load_average', description: 'on-demand load_average, default parameters (TAO: advise beyond 80 % above average)', strategy: { name: 'load_average', params: {} }, client: 'rebind' },
    { key: 'peer_grpc_weighted_round_robin', description: `no balancer: grpc-js weighted_round_robin over the ${replicas} replicas, weights from rebind ORCA reports`, strategy: null, client: 'grpc_wrr' },
  ];
}

/** In the xds run, clients 1..XDS_PYTHON_CLIENTS are Python xDS clients (100/50/100/50 calls/s), the others Node xDS clients. */
export const XDS_PYTHON_CLIENTS = 4;

export const SCENARIOS: ScenarioSpec[] = [
  {
    key: 'paper',
    summary: '4 replicas, 8 open-loop clients at 100/50/100/50/... calls/s. Every run starts from round-robin bindings (200/100/200/100)',
    replicas: 4,
    rates: [100, 50, 100, 50, 100, 50, 100, 50],
    runs: [
      ...commonRuns(150, 4),
      {
        key: 'xds',
        description: `on-demand minimum_dispersion, default parameters, with proxyless xDS clients instead of rebind clients: clients 1-${XDS_PYTHON_CLIENTS} Python (python3-grpcio), ${XDS_PYTHON_CLIENTS + 1}-8 Node (@grpc/grpc-js-xds), target xds:///bench, one process and one xDS node each. They bind in order (each one's first call completes before the next starts) while the group is per-session round_robin, so ADS hands out round-robin bindings as for the others; the planner sees their loads over LRS and moves them by EDS pushes (re-binds: the balancer's rebind_xds_pushes_total, polled)`,
        strategy: { name: 'minimum_dispersion', params: {} },
        client: 'xds',
      },
    ],
  },
  {
    key: 'few-heavy',
    summary:
      '8 replicas, 2 open-loop clients at 400 calls/s each (one process and one rebind client id each). The strategy runs start from round-robin bindings (400/400/0/0/0/0/0/0); the per-request runs start and stay per-request (round_robin)',
    replicas: 8,
    rates: [400, 400],
    limits: { maxProxiedCallsPerCaller: 1000 },
    runs: [
      ...commonRuns(100, 8).slice(0, 4),
      {
        key: 'per_request_direct',
        description:
          'per-request group, rebind-aware clients (clientOptions()): a direct weighted binding over every member where the balancer hands one out, proxied otherwise (the served direct/proxied counts tell which)',
        strategy: null,
        client: 'rebind',
        granularity: 'per-request',
      },
      { key: 'per_request_proxied', description: "per-request group, plain clients (no rebind options) through the balancer's data port: every call relayed", strategy: null, client: 'plain', granularity: 'per-request' },
      commonRuns(100, 8)[4]!,
    ],
  },
];

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
  /** Up to 5 distinct failures the clients saw (status: details), when any failed. */
  failures?: string[];
  /** Calls the replicas served over the whole run (warm-up included), by how they arrived. */
  served: { direct: number; proxied: number };
  /** The balancer process's CPU over the measured window, % of one core (the proxy's cost in per-request runs). */
  balancer_cpu_pct: number;
  /** The clients' own health: the worst p99 lateness of a call against its schedule (ms) and the busiest client's CPU (% of one core). */
  clients: { late_ms_p99: number; cpu_pct_max: number };
  series: SeriesRow[];
}

interface ScenarioResult {
  replicas: number;
  rates: number[];
  ideal_rps: number;
  limits?: Record<string, number>;
  runs: Record<string, RunResult>;
}

async function runOne(scenario: ScenarioSpec, spec: RunSpec, durationMs: number, reportIntervalMs: number, tmp: string, progress: Progress): Promise<RunResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const file = path.join(tmp, `${scenario.key}-${spec.key}.json`);
    const granularity = spec.granularity ?? 'per-session';
    writeFileSync(
      file,
      JSON.stringify({
        listen: '127.0.0.1:0',
        controlListen: '127.0.0.1:0',
        adminListen: '127.0.0.1:0',
        ...(scenario.limits ? { limits: scenario.limits } : {}),
        groups: [{ name: 'bench', granularity, strategy: 'round_robin', reportIntervalMs }],
      }),
    );
    const balancer: BalancerProcess = await startBalancerProcess(file);
    stops.push(() => balancer.stop());
    // Each replica pushes (its clock, calls served so far); the series interpolates them at exact sample times.
    const counts: [number, number][][] = Array.from({ length: scenario.replicas }, () => []);
    const proxied: number[] = Array.from({ length: scenario.replicas }, () => 0);
    // Processes start in parallel; only the binding calls below need an order.
    const replicas = await Promise.all(
      counts.map(async (_, i) => {
        const { worker, ready } = await Worker.start(`r${i + 1}`, 'prime-replica.js', ['--name', `r${i + 1}`, '--mode', 'rebind', '--balancer', balancer.control, '--group', 'bench', '--push-ms', String(SAMPLE_MS / 5)]);
        worker.onEvent = (m) => {
          if (m.type === 'served') counts[i]!.push([Number(m['t']), Number(m['served'])]);
        };
        stops.push(() => worker.stop());
        return { worker, address: String(ready['address']) };
      }),
    );
    const wrr = spec.client === 'grpc_wrr';
    const target = wrr ? `ipv4:${replicas.map((r) => r.address).join(',')}` : balancer.data;
    const rebindTimes: number[] = [];
    const xds = spec.client === 'xds';
    /** xds: the replica each client's first call reached (its initial binding). */
    const initial: string[] = [];
    let clients: Worker[];
    if (xds) {
      const python = pythonGrpcVersion();
      if (typeof python === 'object') throw new Error(python.missing);
      // One at a time, each one's first call before the next starts: ADS binds them in this order
      // (round-robin, as the rebind clients below), which a client cannot ask for itself.
      clients = [];
      for (const [i] of scenario.rates.entries()) {
        const env = { GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(xdsBootstrap(balancer.control, 'bench', `bench-c${i + 1}`)), GRPC_XDS_BOOTSTRAP: '' };
        const worker =
          i < XDS_PYTHON_CLIENTS
            ? await startPythonClient(`c${i + 1}`, 'xds:///bench', env)
            : (await Worker.start(`c${i + 1}`, 'prime-client.js', ['--mode', 'xds', '--target', 'xds:///bench'], env)).worker;
        stops.push(() => worker.stop());
        clients.push(worker);
        const first = await worker.request({ type: 'first' });
        if (first.type === 'error') throw new Error(`c${i + 1}'s first call failed: ${String(first['error'])}`);
        initial.push(String(first['servedBy']));
      }
    } else {
      // One process per logical client: each is one channel, so one rebind client id. 400 calls/s
      // take 20-35 % of a core on the 2-core development machine; the clients' send lag and CPU in
      // the results show whether they kept up.
      clients = await Promise.all(
        scenario.rates.map(async (_, i) => {
          const { worker } = await Worker.start(`c${i + 1}`, 'prime-client.js', ['--mode', spec.client, '--target', target]);
          worker.onEvent = (m) => {
            if (m.type === 'rebind') rebindTimes.push(Number(m['t']));
          };
          stops.push(() => worker.stop());
          return worker;
        }),
      );
      // One call each, in order: round-robin binds clients i and i + replicas to the same replica
      // (paper: 200/100/200/100; few-heavy: 400/400/0/...). Per-request groups bind nobody to one replica.
      if (!wrr) for (const c of clients) await c.request({ type: 'first' });
    }
    // xDS clients tell nobody when they are re-bound: count the EDS pushes the balancer makes.
    const pushPoller = xds ? pollXdsPushes(balancer, rebindTimes) : null;
    if (pushPoller) stops.push(async () => pushPoller.stop());
    const admin = adminClient(balancer.control);
    stops.push(async () => admin.close());
    // The clients run for a warm-up first (as in the paper, balancing takes over running clients),
    // so that the replicas' reports show the load before the strategy acts on them.
    const warmupMs = 4 * reportIntervalMs;
    // A second past the measured window, so that its last sample is fully loaded.
    const loads = clients.map((c, i) => c.request({ type: 'open-loop', rate: scenario.rates[i], durationMs: warmupMs + durationMs + 1000 }));
    await new Promise((r) => setTimeout(r, warmupMs));
    if (spec.strategy !== null) {
      await adminCall(admin, balancer.control, 'SetStrategy', { group: 'bench', strategy: spec.strategy.name, paramsJson: JSON.stringify(spec.strategy.params) });
    }
    const t0 = Date.now();
    const balancerCpu0 = cpuSeconds(balancer.pid);
    if (spec.strategy !== null) await adminCall(admin, balancer.control, 'SetGranularity', { group: 'bench', granularity: 'on-demand' });
    const ticker = setInterval(() => progress.tick(`${scenario.key} ${spec.key}`), SAMPLE_MS);
    const balancerCpuAtEnd = new Promise<number>((resolve) => setTimeout(() => resolve(balancer.process.exitCode === null && balancer.process.signalCode === null ? cpuSeconds(balancer.pid) : Number.NaN), durationMs));
    const replies = await Promise.all(loads);
    const balancerCpuS = (await balancerCpuAtEnd) - balancerCpu0;
    // A dead balancer would leave numbers that look like a strategy's result.
    if (balancer.process.exitCode !== null || balancer.process.signalCode !== null) {
      throw new Error(`${scenario.key} ${spec.key}: the balancer exited during the run (code ${balancer.process.exitCode ?? balancer.process.signalCode}); its stderr is above`);
    }
    clearInterval(ticker);
    for (const [i, r] of replicas.entries()) {
      const reply = await r.worker.request({ type: 'served' });
      proxied[i] = Number(reply['proxied'] ?? 0);
      counts[i]!.push([Date.now(), Number(reply['served'] ?? 0)]);
    }
    const servedTotal = counts.reduce((s, points) => s + (points[points.length - 1]?.[1] ?? 0), 0);
    const proxiedTotal = proxied.reduce((a, b) => a + b, 0);
    const series = resample(counts, t0, durationMs);
    const convergence = convergenceSeconds(series);
    const durationS = durationMs / 1000;
    return {
      description: spec.description,
      config: xds
        ? {
            clients: scenario.rates.map((_, i) => (i < XDS_PYTHON_CLIENTS ? 'python xds' : 'node xds')),
            initial: 'per-session round_robin, bound in client order through ADS',
            initial_servers: initial,
            warmup_ms: warmupMs,
            from_t0: { granularity: 'on-demand', strategy: spec.strategy },
            report_interval_ms: reportIntervalMs,
          }
        : wrr
        ? { client_policy: 'weighted_round_robin', enable_oob_load_report: true, oob_load_reporting_period: '1s', warmup_ms: warmupMs }
        : spec.granularity === 'per-request'
          ? { granularity: 'per-request', strategy: 'round_robin', client: spec.client === 'rebind' ? 'clientOptions()' : 'plain', warmup_ms: warmupMs, report_interval_ms: reportIntervalMs }
          : { initial: 'per-session round_robin', warmup_ms: warmupMs, from_t0: spec.strategy ? { granularity: 'on-demand', strategy: spec.strategy } : 'unchanged', report_interval_ms: reportIntervalMs },
      convergence_s: convergence,
      steady: steadyState(series, durationS / 2),
      rebinds: rebindTimes.filter((t) => t >= t0).length,
      rebinds_after_convergence: rebindTimes.filter((t) => t >= t0 && (convergence === null || (t - t0) / 1000 > convergence)).length,
      calls: replies.reduce((s, r) => s + Number(r['sent'] ?? 0), 0),
      failed_calls: replies.reduce((s, r) => s + Number(r['failed'] ?? 0), 0),
      ...failures(replies),
      served: { direct: servedTotal - proxiedTotal, proxied: proxiedTotal },
      balancer_cpu_pct: round((balancerCpuS * 100_000) / durationMs, 1),
      clients: {
        late_ms_p99: Math.max(...replies.map((r) => Number((r['lateMs'] as { p99?: number } | undefined)?.p99 ?? 0))),
        cpu_pct_max: Math.max(...replies.map((r) => Number(r['cpuPct'] ?? 0))),
      },
      series,
    };
  } finally {
    for (const s of stops.reverse()) await s();
  }
}

/**
 * Polls the balancer's rebind_xds_pushes_total (admin /metrics) every
 * SAMPLE_MS and appends the poll's time once per push it counted, so that
 * re-binds of xDS clients land in the same series as rebind clients' events
 * (to within one poll).
 */
function pollXdsPushes(balancer: BalancerProcess, times: number[]): { stop(): void } {
  if (balancer.admin === undefined) throw new Error('the xds run needs the balancer\'s admin port (adminListen)');
  let last: number | null = null;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    fetch(new URL('metrics', balancer.admin))
      .then((r) => {
        if (!r.ok) throw new Error(`GET /metrics: HTTP ${r.status}`);
        return r.text();
      })
      .then((text) => {
        const m = /^rebind_xds_pushes_total (\d+)/m.exec(text);
        if (m === null) return;
        const now = Date.now();
        const count = Number(m[1]);
        if (last !== null) for (let i = last; i < count; i++) times.push(now);
        last = count;
      })
      .catch((err: Error) => say(`xds pushes poll: ${err.message}`))
      .finally(() => (busy = false));
  }, SAMPLE_MS);
  return { stop: () => clearInterval(timer) };
}

/** Up to 5 distinct failures the clients reported (a worker's error reply counts as one). */
function failures(replies: WorkerMessage[]): { failures?: string[] } {
  const seen = new Set<string>();
  for (const r of replies) {
    if (r.type === 'error') seen.add(`worker: ${String(r['error'])}`);
    for (const e of (r['errors'] as string[] | undefined) ?? []) seen.add(e);
  }
  return seen.size > 0 ? { failures: [...seen].slice(0, 5) } : {};
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

/** One panel per run of one scenario: per-replica load over time, the ideal as a dashed rule. */
function scenarioChart(key: string, scenario: ScenarioResult): Record<string, unknown> {
  const values = Object.entries(scenario.runs).flatMap(([run, r]) => r.series.flatMap((row) => row.slice(1).map((rps, i) => ({ run, t: row[0], replica: `r${i + 1}`, rps }))));
  return {
    title: `${key}: ${scenario.replicas} replicas, clients at ${scenario.rates.join('/')} calls/s; ideal ${scenario.ideal_rps} calls/s`,
    data: { values },
    facet: { row: { field: 'run', type: 'nominal', title: null, sort: Object.keys(scenario.runs) } },
    spec: {
      width: 560,
      height: 120,
      layer: [
        {
          mark: { type: 'line', strokeWidth: 1.3 },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 'seconds since the strategy took over' },
            y: { field: 'rps', type: 'quantitative', title: 'calls/s', scale: { zero: true } },
            color: { field: 'replica', type: 'nominal', sort: Array.from({ length: scenario.replicas }, (_, i) => `r${i + 1}`) },
          },
        },
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { y: { datum: scenario.ideal_rps } } },
      ],
    },
  };
}

async function chart(scenarios: Record<string, ScenarioResult>): Promise<string> {
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind effectiveness: per-replica load over time (paper Figs. 5-6, and few heavy clients)',
    vconcat: Object.entries(scenarios).map(([key, s]) => scenarioChart(key, s)),
  });
}

function scenarioMarkdown(key: string, spec: ScenarioSpec, scenario: ScenarioResult, reportIntervalMs: number, durationS: number): string[] {
  return [
    `## ${key}`,
    '',
    `${spec.summary}; report interval ${reportIntervalMs} ms; the clients run for a warm-up of 4 report intervals, then the run's strategy takes over at t = 0 and the run is measured for ${durationS} s. Ideal: ${scenario.ideal_rps} calls/s per replica.` +
      (scenario.limits ? ` Balancer limits: ${Object.entries(scenario.limits).map(([k, v]) => `\`limits.${k}\` ${v}`).join(', ')} (every client calls from 127.0.0.1).` : ''),
    '',
    '| run | converged (s) | steady max/mean | steady cv | re-binds | after convergence | calls | failed | served direct | served proxied | balancer CPU % | client lag p99 ms | client CPU % |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...Object.entries(scenario.runs).map(
      ([run, r]) =>
        `| ${run} | ${r.convergence_s ?? 'never'} | ${r.steady.max_over_mean} | ${r.steady.cv} | ${r.rebinds} | ${r.rebinds_after_convergence} | ${r.calls} | ${r.failed_calls} | ${r.served.direct} | ${r.served.proxied} | ${r.balancer_cpu_pct} | ${r.clients.late_ms_p99} | ${r.clients.cpu_pct_max} |`,
    ),
    '',
    ...Object.entries(scenario.runs).map(([run, r]) => `- \`${run}\`: ${r.description}`),
    '',
  ];
}

function markdown(scenarios: Record<string, ScenarioResult>, reportIntervalMs: number, command: string, durationS: number): string {
  const lines = [
    '# Effectiveness (paper Figures 5-6; few heavy clients)',
    '',
    `\`${command}\` — one table per scenario.`,
    '',
    'converged: seconds until max/mean stays at or below 1.10 for the rest of the run; steady: over the last half of the run. served direct / proxied: calls the replicas served over the whole run (warm-up included), straight from a client or relayed by the balancer (they carry its rebind-proxied header). balancer CPU: the balancer process over the measured window, % of one core. client lag p99: the worst client\'s 99th percentile of how late a call left against its open-loop schedule; client CPU: the busiest client process, % of one core (each client is one process and one channel).',
    '',
    ...Object.entries(scenarios).flatMap(([key, s]) => scenarioMarkdown(key, SCENARIOS.find((x) => x.key === key)!, s, reportIntervalMs, durationS)),
  ];
  return lines.join('\n');
}

async function main(opts: { quick?: boolean; duration?: number; out: string; runs?: string; scenario: string }): Promise<void> {
  // --quick: BENCHMARKS.md suggests 20 s per run; 12 runs of 20 s would not fit in 90 s.
  const durationS = opts.duration ?? (opts.quick ? 5 : 60);
  if (!(durationS >= 1 && durationS <= 3600)) throw new Error(`--duration is ${durationS}; it must be 1..3600 seconds`);
  const reportIntervalMs = opts.quick ? 500 : 1000;
  const scenarioKeys = SCENARIOS.map((s) => s.key);
  if (opts.scenario !== 'all' && !scenarioKeys.includes(opts.scenario)) throw new Error(`unknown --scenario ${opts.scenario}; accepted: ${[...scenarioKeys, 'all'].join(', ')}`);
  const chosen = SCENARIOS.filter((s) => opts.scenario === 'all' || s.key === opts.scenario);
  const known = [...new Set(chosen.flatMap((s) => s.runs.map((r) => r.key)))];
  const wanted = opts.runs?.split(',') ?? known;
  const unknown = wanted.filter((w) => !known.includes(w));
  if (unknown.length > 0) throw new Error(`unknown run(s) ${unknown.join(', ')} for --scenario ${opts.scenario}; accepted: ${known.join(', ')}`);
  const plan = chosen.map((scenario) => ({ scenario, specs: scenario.runs.filter((r) => wanted.includes(r.key)) })).filter((p) => p.specs.length > 0);
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-effectiveness-'));
  const progress = new Progress('effectiveness', Math.ceil((plan.reduce((n, p) => n + p.specs.length, 0) * durationS * 1000) / SAMPLE_MS));
  const scenarios: Record<string, ScenarioResult> = {};
  for (const { scenario, specs } of plan) {
    const result: ScenarioResult = { replicas: scenario.replicas, rates: scenario.rates, ideal_rps: idealRps(scenario), ...(scenario.limits ? { limits: scenario.limits } : {}), runs: {} };
    for (const spec of specs) {
      say(`run ${scenario.key} ${spec.key} (${durationS} s)`);
      result.runs[spec.key] = await runOne(scenario, spec, durationS * 1000, reportIntervalMs, tmp, progress);
    }
    scenarios[scenario.key] = result;
  }
  progress.stop();
  rmSync(tmp, { recursive: true, force: true });
  const paper = scenarios['paper'];
  const json = {
    machine: machine(),
    report_interval_ms: reportIntervalMs,
    // The paper scenario at the top level, as this file had it before it had scenarios.
    ...(paper ? { ideal_rps: paper.ideal_rps } : {}),
    duration_s: durationS,
    sample_ms: SAMPLE_MS,
    ...(paper ? { runs: paper.runs } : {}),
    scenarios,
  };
  const flags = [opts.quick ? '--quick' : '', opts.scenario !== 'all' ? `--scenario ${opts.scenario}` : '', opts.runs ? `--runs ${opts.runs}` : '', opts.duration !== undefined ? `--duration ${opts.duration}` : ''].filter((f) => f !== '');
  const command = `npm run bench:effectiveness${flags.length > 0 ? ` -- ${flags.join(' ')}` : ''}`;
  const md = markdown(scenarios, reportIntervalMs, command, durationS);
  const files = writeResults(opts.out, 'effectiveness', json, md, await chart(scenarios));
  say(md);
  say(`wrote ${files.join(', ')}`);
}

const program = new Command('bench:effectiveness')
  .description("How well each strategy balances the paper's uneven clients (Figs. 5-6) and two heavy clients on 8 replicas.")
  .option('--quick', 'CI smoke size: 5 s per run, 500 ms reports')
  .option('--duration <s>', 'seconds per run (default 60; --quick 5)', (v) => Number(v))
  .option('--scenario <name>', `${SCENARIOS.map((s) => s.key).join(' | ')} | all`, 'all')
  .option('--runs <list>', `comma-separated subset of the scenario's runs: ${[...new Set(SCENARIOS.flatMap((s) => s.runs.map((r) => r.key)))].join(', ')}`)
  .option('--out <dir>', 'where to write effectiveness.{json,md,svg}', RESULTS_DIR);

runBenchCommand(program, main);
