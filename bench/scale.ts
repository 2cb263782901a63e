/**
 * Scale benchmark: one balancer, many replicas attached and reporting every
 * second (simulated over real control streams, one connection each), and
 * new clients being bound at increasing rates until the balancer saturates.
 * Measures the balancer process's CPU and memory from /proc. Writes
 * bench/results/scale.{json,md,svg}.
 */
import { Command } from 'commander';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { renderSvg } from './lib/charts';
import { cpuSeconds, decodeHistogram, machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { startBalancerProcess, Worker, runBenchCommand } from './lib/processes';

const REPORT_INTERVAL_MS = 1000;
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}

interface Point {
  replicas: number;
  clients: number;
  report_interval_ms: number;
  offered_binds_per_s: number;
  binds_per_s: number;
  bind_p50_us: number | null;
  bind_p99_us: number | null;
  failed_binds: number;
  balancer_cpu_pct: number;
  balancer_rss_mb: number;
  reports_per_s: number;
  saturated: boolean;
}

async function measureReplicas(replicas: number, rates: number[], windowMs: number, tmp: string, progress: Progress): Promise<Point[]> {
  const file = path.join(tmp, `scale-${replicas}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      listen: '127.0.0.1:0',
      controlListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      groups: [{ name: 'scale', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: REPORT_INTERVAL_MS, maxMembers: 5000 }],
    }),
  );
  const balancer = await startBalancerProcess(file);
  const stops: (() => Promise<void>)[] = [() => balancer.stop()];
  try {
    const sims = await Worker.start('replicas', 'scale-replicas.js', ['--balancer', balancer.control]);
    stops.push(() => sims.worker.stop());
    const binder = await Worker.start('binder', 'scale-binder.js', ['--target', balancer.data]);
    stops.push(() => binder.worker.stop());
    const attached = await sims.worker.request({ type: 'attach', n: replicas });
    if (attached.type === 'error') throw new Error(String(attached['error']));
    // Let every replica settle into its reporting rhythm.
    await new Promise((r) => setTimeout(r, 2 * REPORT_INTERVAL_MS + 500));
    const points: Point[] = [];
    for (const rate of rates) {
      const reports0 = Number((await sims.worker.request({ type: 'stats' }))['reports']);
      const cpu0 = cpuSeconds(balancer.pid);
      const t0 = Date.now();
      let ok = 0;
      let failed = 0;
      let p50: number | null = null;
      let p99: number | null = null;
      let elapsedMs = windowMs;
      if (rate > 0) {
        const reply = await binder.worker.request({ type: 'binds', rate, durationMs: windowMs });
        if (reply.type === 'error') throw new Error(`binder: ${String(reply['error'])}`);
        ok = Number(reply['ok']);
        failed = Number(reply['failed']);
        elapsedMs = Number(reply['elapsedMs']);
        const h = decodeHistogram(String(reply['histogram']));
        p50 = h.totalCount > 0 ? h.getValueAtPercentile(50) : null;
        p99 = h.totalCount > 0 ? h.getValueAtPercentile(99) : null;
      } else {
        await new Promise((r) => setTimeout(r, windowMs));
      }
      const seconds = (Date.now() - t0) / 1000;
      const cpu = cpuSeconds(balancer.pid) - cpu0;
      const reports = Number((await sims.worker.request({ type: 'stats' }))['reports']) - reports0;
      const achieved = ok / (elapsedMs / 1000);
      const saturated = rate > 0 && (achieved < 0.9 * rate || failed > 0.01 * rate * (windowMs / 1000));
      points.push({
        replicas,
        clients: ok,
        report_interval_ms: REPORT_INTERVAL_MS,
        offered_binds_per_s: rate,
        binds_per_s: Math.round(achieved),
        bind_p50_us: p50,
        bind_p99_us: p99,
        failed_binds: failed,
        balancer_cpu_pct: Math.round((cpu / seconds) * 1000) / 10,
        balancer_rss_mb: rssMb(balancer.pid),
        reports_per_s: Math.round(reports / seconds),
        saturated,
      });
      progress.tick(`${replicas} replicas, ${rate} binds/s`);
      say(`  ${replicas} replicas, offered ${rate} binds/s: achieved ${Math.round(achieved)}/s, p99 ${p99 ?? '-'} µs, balancer CPU ${points.at(-1)!.balancer_cpu_pct} %, RSS ${points.at(-1)!.balancer_rss_mb} MB${saturated ? ' (saturated)' : ''}`);
      if (saturated) break;
    }
    return points;
  } finally {
    for (const s of stops.reverse()) await s();
  }
}

/** CPU per report (from the idle points) and per bind (slope over the unsaturated bind points), per replica count. */
function derive(points: Point[]) {
  const byReplicas = new Map<number, Point[]>();
  for (const p of points) byReplicas.set(p.replicas, [...(byReplicas.get(p.replicas) ?? []), p]);
  return [...byReplicas].map(([replicas, ps]) => {
    const idle = ps.find((p) => p.offered_binds_per_s === 0);
    const busy = ps.filter((p) => p.offered_binds_per_s > 0 && !p.saturated);
    const top = busy.at(-1);
    const cpuPerReportUs = idle && idle.reports_per_s > 0 ? Math.round(((idle.balancer_cpu_pct / 100) * 1e6) / idle.reports_per_s) : null;
    const cpuPerBindUs = idle && top && top.binds_per_s > 0 ? Math.round((((top.balancer_cpu_pct - idle.balancer_cpu_pct) / 100) * 1e6) / top.binds_per_s) : null;
    const max = ps.filter((p) => p.offered_binds_per_s > 0).reduce((m, p) => Math.max(m, p.binds_per_s), 0);
    return { replicas, cpu_us_per_report: cpuPerReportUs, cpu_us_per_bind: cpuPerBindUs, max_binds_per_s: max, rss_mb_idle: idle?.balancer_rss_mb ?? null };
  });
}

async function chart(points: Point[]): Promise<string> {
  const values = points.map((p) => ({ ...p, series: `${p.replicas} replicas` }));
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind balancer scale: CPU and bind latency (reports every 1 s)',
    data: { values },
    hconcat: [
      {
        title: 'balancer CPU (% of one core) vs binds/s',
        width: 300,
        height: 220,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'binds_per_s', type: 'quantitative', title: 'binds/s achieved' },
          y: { field: 'balancer_cpu_pct', type: 'quantitative', title: 'CPU %' },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
      {
        title: 'bind latency p99 (µs) vs binds/s',
        width: 300,
        height: 220,
        transform: [{ filter: 'datum.bind_p99_us != null' }],
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'binds_per_s', type: 'quantitative', title: 'binds/s achieved' },
          y: { field: 'bind_p99_us', type: 'quantitative', title: 'p99 µs', scale: { type: 'log' } },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
      {
        title: 'balancer RSS (MB) vs replicas',
        width: 200,
        height: 220,
        transform: [{ filter: 'datum.offered_binds_per_s == 0' }],
        mark: { type: 'line', point: true },
        encoding: { x: { field: 'replicas', type: 'quantitative', scale: { type: 'log' } }, y: { field: 'balancer_rss_mb', type: 'quantitative', title: 'MB' } },
      },
    ],
  });
}

function markdown(json: { points: Point[]; derived: ReturnType<typeof derive>; window_s: number }, command: string): string {
  return [
    '# Scale',
    '',
    `\`${command}\` — one balancer; simulated replicas over real control streams (one connection each) reporting every ${REPORT_INTERVAL_MS} ms; new rebind clients bound at open-loop rates (${json.window_s} s per point) until the balancer saturates (achieved < 90 % of offered). CPU is the balancer process's, in % of one core.`,
    '',
    '| replicas | offered binds/s | achieved binds/s | bind p50 µs | bind p99 µs | reports/s | balancer CPU % | RSS MB |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...json.points.map(
      (p) =>
        `| ${p.replicas} | ${p.offered_binds_per_s} | ${p.binds_per_s}${p.saturated ? ' (saturated)' : ''} | ${p.bind_p50_us ?? '-'} | ${p.bind_p99_us ?? '-'} | ${p.reports_per_s} | ${p.balancer_cpu_pct} | ${p.balancer_rss_mb} |`,
    ),
    '',
    '| replicas | CPU per report (µs) | CPU per bind (µs) | max binds/s | RSS idle (MB) |',
    '| ---: | ---: | ---: | ---: | ---: |',
    ...json.derived.map((d) => `| ${d.replicas} | ${d.cpu_us_per_report ?? '-'} | ${d.cpu_us_per_bind ?? '-'} | ${d.max_binds_per_s} | ${d.rss_mb_idle ?? '-'} |`),
    '',
    'CPU per report: idle balancer CPU / reports per second. CPU per bind: extra CPU at the highest unsaturated bind rate / binds per second. The load generators share the 2 cores with the balancer, so saturation is that of the machine, not of the balancer alone.',
  ].join('\n');
}

async function main(opts: { quick?: boolean; out: string; replicas?: string; rates?: string }): Promise<void> {
  const list = (text: string | undefined, fallback: number[]) => (text === undefined ? fallback : text.split(',').map(Number));
  const replicaCounts = list(opts.replicas, opts.quick ? [10, 100] : [10, 100, 300, 1000]);
  const rates = list(opts.rates, opts.quick ? [0, 500, 2000, 8000] : [0, 500, 1000, 2000, 4000, 8000, 16000]);
  const windowMs = opts.quick ? 4000 : 10_000;
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-scale-'));
  const progress = new Progress('scale', replicaCounts.length * rates.length);
  const points: Point[] = [];
  for (const n of replicaCounts) {
    say(`${n} replicas`);
    points.push(...(await measureReplicas(n, rates, windowMs, tmp, progress)));
  }
  progress.stop();
  rmSync(tmp, { recursive: true, force: true });
  const json = { machine: machine(), window_s: windowMs / 1000, points, derived: derive(points) };
  const command = `npm run bench:scale${opts.quick ? ' -- --quick' : ''}`;
  const md = markdown(json, command);
  const files = writeResults(opts.out, 'scale', json, md, await chart(points));
  say(md);
  say(`wrote ${files.join(', ')}`);
}

const program = new Command('bench:scale')
  .description('Balancer CPU and memory with many replicas reporting and clients being bound.')
  .option('--quick', 'CI smoke size: 10 and 100 replicas, 4 s per point (under 90 s)')
  .option('--replicas <list>', 'comma-separated replica counts (default 10,100,300,1000; --quick 10,100)')
  .option('--rates <list>', 'comma-separated offered bind rates per second, 0 = reports only')
  .option('--out <dir>', 'where to write scale.{json,md,svg}', RESULTS_DIR);

runBenchCommand(program, main);
