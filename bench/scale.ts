/**
 * Scale benchmark: the balancer ALONE. One balancer process pinned to core 0
 * (taskset), its load generators pinned to core 1: simulated replicas over
 * real control streams (one connection each) reporting every second, new
 * clients bound at stepped open-loop rates (each a distinct client id, so
 * each is a real bind), and, for the memory points, clients bound and held
 * (rebind clients in the ledger, xDS ADS streams). Every generator reports
 * its own CPU, event-loop delay and whether it kept its schedule; a point
 * where they could not is marked generator-limited and never taken for the
 * balancer's saturation. Balancer CPU and RSS come from /proc, its heap and
 * counters from its admin /metrics. `--cpu-prof R:B` profiles one point.
 * `--compare-balancer <main.js>` runs another build's balancer beside this
 * one (both on the balancer core, each with its own replicas and binder) and
 * measures every point on both, alternately, `--ab-rounds` times: the A/B of
 * a change on one noisy machine (medians and ratios in scale.md).
 * `--balancer-node-args` / `--compare-node-args` give each side its own node
 * flags (e.g. --max-semi-space-size=32), everything else identical;
 * `--compare-node-args` alone compares this build with itself under two flag
 * sets.
 * Writes bench/results/scale.{json,md,svg} (a --quick run: a temporary
 * directory unless --out).
 */
import { Command } from 'commander';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { renderSvg } from './lib/charts';
import { renderFlameGraph } from './lib/flamegraph';
import { cpuSeconds, decodeHistogram, machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { pinningUnavailable, pinToCpu, startBalancerProcess, Worker, runBenchCommand, type BalancerProcess } from './lib/processes';
import { DEFAULT_MISSED_REPORTS } from '../src/balancer/config';
import { ONE_CORE_NODE_FLAGS } from '../src/common/runtime';

const REPORT_INTERVAL_MS = 1000;
/**
 * Report intervals a member may stay silent before the balancer drops it
 * (--missed-reports): the balancer's default. The simulated replicas report
 * at once on attachment, as the replica runtime does, and the balancer does
 * not count its own lag against them (src/balancer/analyzer.ts), so a mass
 * attachment of 10,000 replicas needs no more; each ladder's attachment
 * record tells how many were dropped while attaching, and why.
 */
let missedReports = DEFAULT_MISSED_REPORTS;
/** The balancer's core and the load generators' core when pinned. */
const BALANCER_CPU = 0;
const GENERATOR_CPU = 1;
/** A generator core busier than this (share of one core, all generators together) cannot be trusted to keep its schedule. */
const GENERATOR_CPU_LIMIT = 0.85;
/** A bind the binder wrote more than this after it was due was sent late (ms). */
const LATE_SEND_MS = 20;
/** Binds sent late above this share of those offered: the binder fell behind its schedule. */
const GENERATOR_LATE_LIMIT = 0.01;
/** Simulated replicas delivering fewer reports than this share of theirs: the simulation fell behind. */
const REPORTS_KEPT_LIMIT = 0.95;
/** The balancer is saturated when it completes fewer binds than this share of those offered... */
const ACHIEVED_LIMIT = 0.9;
/** ...or its bind p99 is above this (µs). */
const SATURATED_P99_US = 100_000;
/**
 * A balancer that waited for its core (run queue, other processes on it)
 * longer than this share of a window was not measured alone: such a point is
 * marked core_contended and, like a generator-limited one, never taken for
 * the balancer's saturation.
 */
const CONTENDED_WAIT_PCT = 10;
/** Rate at which the memory points bind their clients (binds/s). */
const MEMORY_BIND_RATE = 5000;
/** Pause before a memory reading (ms): transient garbage of the binding has a chance to go (--quick: 500). */
let memorySettleMs = 3000;
/** Warm-up binds before the first point (binds/s, for warmupMs; --quick: 300 ms). */
const WARMUP_BINDS_PER_S = 1000;
let warmupMs = 1000;
/** Report intervals the replicas get to settle into their rhythm before the first point (--quick: 1). */
let settleIntervals = 2;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return Math.round((kb / 1024) * 10) / 10;
}
const round1 = (x: number) => Math.round(x * 10) / 10;

/**
 * Seconds process `pid`'s main thread has spent runnable but waiting for a
 * CPU (Linux /proc/<pid>/schedstat, second field): how much other processes
 * on its core held it back. 0 when unavailable.
 */
function runQueueWaitSeconds(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return 0;
  }
}

/** The balancer's admin /metrics, summed per metric name over label sets. */
async function scrape(balancer: BalancerProcess): Promise<Map<string, number>> {
  const res = await fetch(new URL('metrics', balancer.admin!));
  const text = await res.text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line.length === 0) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})? (\S+)/.exec(line);
    if (m !== null) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
    // GC time by kind too (minor: scavenges of the young generation).
    const gc = /^nodejs_gc_duration_seconds_sum\{kind="(\w+)"\} (\S+)/.exec(line);
    if (gc !== null) out.set(`gc_seconds_${gc[1]!}`, Number(gc[2]));
  }
  return out;
}

/** Which balancer a point measured: this build's, or the --compare-balancer build's. */
type Build = 'main' | 'compare';

interface Point {
  /** This build's balancer, or the --compare-balancer one (A/B runs). */
  build: Build;
  /** The A/B round of the point (0 without --compare-balancer). */
  round: number;
  replicas: number;
  report_interval_ms: number;
  /** Members the balancer had at the end of the window. */
  members: number;
  /** Reports the simulated replicas sent per second (reports_per_s: those the balancer applied). */
  sim_reports_per_s: number;
  offered_binds_per_s: number;
  binds_per_s: number;
  /** Binds the binder saw answered with a forward over the window. */
  binds_ok: number;
  /** Binds the balancer counted (rebind_binds_total) over the window: checks the binder's count. */
  binds_counted_by_balancer: number;
  bind_p50_us: number | null;
  bind_p99_us: number | null;
  failed_binds: number;
  balancer_cpu_pct: number;
  /** Time the balancer spent in GC pauses over the window (nodejs_gc_duration_seconds, all kinds), % of the window; null without it. */
  balancer_gc_pct: number | null;
  /** The minor (young-generation scavenge) part of balancer_gc_pct. */
  balancer_gc_minor_pct: number | null;
  balancer_rss_mb: number;
  balancer_heap_used_mb: number | null;
  reports_per_s: number;
  binder_cpu_pct: number;
  binder_eld_p99_ms: number | null;
  binds_late: number;
  replicas_cpu_pct: number;
  replicas_eld_p99_ms: number;
  /** % of the window the balancer's main thread was runnable but waited for its core (other processes on it). */
  balancer_runqueue_wait_pct: number;
  /** The same for the generators (the larger of the replicas' and the binder's). */
  generators_runqueue_wait_pct: number;
  /** All generators together, % of their one core. */
  generators_cpu_pct: number;
  generator_limited: boolean;
  generator_limited_why: string | null;
  /** The balancer waited for its core more than CONTENDED_WAIT_PCT % of the window: not measured alone. */
  core_contended: boolean;
  /** The balancer's own saturation (never set on a generator-limited or core-contended point). */
  saturated: boolean;
}

interface MemoryPoint {
  /** The step that led to this reading ('start': replicas attached, nothing bound). */
  step: 'start' | MemoryStep['kind'];
  replicas: number;
  rebind_clients: number;
  xds_streams: number;
  /** Clients in the ledger (rebind_bindings). */
  ledger_bindings: number;
  /** ADS streams the balancer holds (rebind_xds_streams). */
  balancer_xds_streams: number;
  balancer_rss_mb: number;
  balancer_heap_used_mb: number | null;
}

/** A memory step: bind rebind clients, or open xDS streams, up to `total` of that kind (cumulative). */
interface MemoryStep {
  kind: 'rebind' | 'xds';
  total: number;
}

interface Pinning {
  pinned: boolean;
  balancer_cpu: number | null;
  generators_cpu: number | null;
  why_not: string | null;
}

interface Setup {
  /** The balancer CLI to run (default this build's). */
  cli?: string;
  tmp: string;
  pinning: Pinning;
  /** Node flags of this side's balancer (--balancer-node-args / --compare-node-args). */
  buildNodeArgs?: string[];
  /** Node flags of a profiled run (--cpu-prof ...), after buildNodeArgs. */
  nodeArgs?: string[];
  xdsMaxStreams?: number;
}

/** A balancer with `replicas` simulated replicas attached and settled, and its generators; pinned if it can be. */
async function cluster(replicas: number, setup: Setup, stops: (() => Promise<void>)[], settle = true) {
  const file = path.join(setup.tmp, `scale-${replicas}-${Date.now()}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      listen: '127.0.0.1:0',
      controlListen: '127.0.0.1:0',
      adminListen: '127.0.0.1:0',
      groups: [{ name: 'scale', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: REPORT_INTERVAL_MS, missedReports, maxMembers: Math.max(5000, replicas + 100) }],
      ...(setup.xdsMaxStreams !== undefined ? { xds: { maxStreams: setup.xdsMaxStreams } } : {}),
    }),
  );
  const balancer = await startBalancerProcess(file, undefined, { execArgv: [...(setup.buildNodeArgs ?? []), ...(setup.nodeArgs ?? [])], ...(setup.cli !== undefined ? { cli: setup.cli } : {}) });
  stops.push(() => balancer.stop(setup.nodeArgs !== undefined ? 30_000 : undefined));
  const pin = (pid: number, cpu: number) => {
    if (setup.pinning.pinned) pinToCpu(pid, cpu);
  };
  pin(balancer.pid, BALANCER_CPU);
  const rssBefore = rssMb(balancer.pid);
  const [sims, binder] = (await Promise.all([Worker.start('replicas', 'scale-replicas.js', ['--balancer', balancer.control]), Worker.start('binder', 'scale-binder.js', ['--target', balancer.data])])).map((w) => w.worker) as [Worker, Worker];
  for (const w of [sims, binder]) {
    stops.push(() => w.stop());
    pin(w.process.pid!, GENERATOR_CPU);
  }
  // The balancer's event-loop delay histogram restarts at each scrape: this one starts the attachment's.
  await scrape(balancer);
  const attachStart = Date.now();
  const attached = await sims.request({ type: 'attach', n: replicas });
  if (attached.type === 'error') throw new Error(String(attached['error']));
  const attachSeconds = (Date.now() - attachStart) / 1000;
  // Warm-up binds (JIT of both sides' bind paths, the binder's connections) before anything is measured.
  const warm = await binder.request({ type: 'binds', rate: WARMUP_BINDS_PER_S, durationMs: warmupMs, lateMs: LATE_SEND_MS });
  if (warm.type === 'error') throw new Error(`binder: ${String(warm['error'])}`);
  // Let every replica settle into its reporting rhythm.
  if (settle) await new Promise((r) => setTimeout(r, settleIntervals * REPORT_INTERVAL_MS + 500));
  const lag = await checkReplicas(sims, balancer, replicas);
  const attachment = await attachmentRecord(sims, replicas, attachSeconds, lag);
  say(
    `  attachment of ${replicas}: ${attachment.attach_s} s, ${attachment.silence_drops} dropped for silence (missedReports ${missedReports}; ${attachment.silence_drops_never_silent} of them never silent that long at their end), ` +
      `balancer loop delay p99 ${dash(attachment.balancer_loop_lag_p99_ms)} ms (max ${dash(attachment.balancer_loop_lag_max_ms)}), replicas' loop delay max ${attachment.replicas_loop_lag_max_ms} ms, report timers up to ${attachment.report_timer_late_max_ms} ms late`,
  );
  return { balancer, sims, binder, rssBefore, pin, warmedClients: Number(warm['ok']), attachment };
}

/**
 * What the mass attachment did, from its start until every replica was a
 * member: replicas the balancer dropped for silence, and how many of those
 * had never been silent for missedReports intervals at their own end (their
 * longest time without writing a report while attached: a drop of such a
 * replica is the balancer's lag or the network's, not the replica's); the
 * balancer's event-loop delay (prom-client's histogram, from the scrape just
 * before the attachment), the simulated replicas' own loop delay and how late
 * their report timers fired.
 */
interface AttachmentRecord {
  replicas: number;
  missed_reports: number;
  attach_s: number;
  /** Replicas dropped for silence ("no load report for N ms") during the attachment and settling (each attached again). */
  silence_drops: number;
  /** Of those, replicas never silent for missedReports intervals at their own end. */
  silence_drops_never_silent: number;
  /** The dropped replicas' longest silence at their own end (median, ms). */
  silence_drop_replica_silent_p50_ms: number | null;
  balancer_loop_lag_p99_ms: number | null;
  balancer_loop_lag_max_ms: number | null;
  replicas_loop_lag_max_ms: number;
  report_timer_late_max_ms: number;
}

async function attachmentRecord(sims: Worker, replicas: number, attachSeconds: number, lag: { loopLagP99Ms: number | null; loopLagMaxMs: number | null }): Promise<AttachmentRecord> {
  const s = await ask(sims, { type: 'stats', deadlineMs: missedReports * REPORT_INTERVAL_MS });
  return {
    replicas,
    missed_reports: missedReports,
    attach_s: round1(attachSeconds),
    silence_drops: Number(s['silence_drops']),
    silence_drops_never_silent: Number(s['silence_drops_never_silent']),
    silence_drop_replica_silent_p50_ms: s['silence_drop_replica_silent_p50_ms'] === null ? null : Math.round(Number(s['silence_drop_replica_silent_p50_ms'])),
    balancer_loop_lag_p99_ms: lag.loopLagP99Ms,
    balancer_loop_lag_max_ms: lag.loopLagMaxMs,
    replicas_loop_lag_max_ms: Math.round(Number(s['attach_eld_max_ms'])),
    report_timer_late_max_ms: Math.round(Number(s['report_timer_late_max_ms'])),
  };
}

/**
 * Waits (up to REPLICAS_WAIT_MS) until all `replicas` are attached, as the
 * simulation and the balancer see it; throws if they never are. Returns the
 * balancer's event-loop delay since the scrape before this call, as the
 * largest p99 and maximum of its scrapes (prom-client restarts the histogram
 * at each scrape), ms.
 */
async function checkReplicas(sims: Worker, balancer: BalancerProcess, replicas: number): Promise<{ loopLagP99Ms: number | null; loopLagMaxMs: number | null }> {
  const deadline = Date.now() + REPLICAS_WAIT_MS;
  const lag = { loopLagP99Ms: null as number | null, loopLagMaxMs: null as number | null };
  const most = (a: number | null, seconds: number | undefined) => (seconds === undefined ? a : Math.max(a ?? 0, Math.round(seconds * 10000) / 10));
  for (;;) {
    const s = await ask(sims, { type: 'stats' });
    const m = await scrape(balancer);
    lag.loopLagP99Ms = most(lag.loopLagP99Ms, m.get('nodejs_eventloop_lag_p99_seconds'));
    lag.loopLagMaxMs = most(lag.loopLagMaxMs, m.get('nodejs_eventloop_lag_max_seconds'));
    const members = m.get('rebind_group_members') ?? 0;
    if (Number(s['attached']) === replicas && members === replicas) {
      if (Number(s['lost']) > 0) say(`  ${replicas} replicas: all attached after ${String(s['lost'])} losses (first: ${String(s['first_loss'])})`);
      return lag;
    }
    if (Date.now() > deadline) throw new Error(`${replicas} replicas: ${String(s['attached'])} attached (${String(s['lost'])} lost, first: ${String(s['first_loss'])}), ${members} members at the balancer`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
/** How long the replicas may take to be all attached after the attachment (lost ones re-attach), ms. */
const REPLICAS_WAIT_MS = 60_000;

async function ask(worker: Worker, message: { type: string; [k: string]: unknown }): Promise<Record<string, unknown>> {
  const reply = await worker.request(message);
  if (reply.type === 'error') throw new Error(`${worker.name}: ${String(reply['error'])}`);
  return reply;
}

/** One point: `rate` binds/s (0: reports only) for `windowMs`, everything measured over the same window. */
async function measurePoint(c: Awaited<ReturnType<typeof cluster>>, replicas: number, rate: number, windowMs: number, binderMode: string, build: Build = 'main', round = 0): Promise<Point> {
  const { balancer, sims, binder } = c;
  // Each source's counts are divided by the time between its own two readings; the balancer's
  // /metrics (large with many members) is read outside its CPU window.
  const m0 = await scrape(balancer);
  const tm0 = Date.now();
  const s0 = await ask(sims, { type: 'stats' });
  const ts0 = Date.now();
  const cpu0 = cpuSeconds(balancer.pid);
  const waits0 = [balancer.pid, sims.process.pid!, binder.process.pid!].map(runQueueWaitSeconds);
  const t0 = Date.now();
  let ok = 0;
  let failed = 0;
  let p50: number | null = null;
  let p99: number | null = null;
  let elapsedMs = windowMs;
  let binderCpuUs = 0;
  let binderEld: number | null = null;
  let late = 0;
  let offered = 0;
  let sent = 0;
  if (rate > 0) {
    const reply = await ask(binder, { type: 'binds', rate, durationMs: windowMs, mode: binderMode, lateMs: LATE_SEND_MS });
    ok = Number(reply['ok']);
    failed = Number(reply['failed']);
    elapsedMs = Number(reply['elapsedMs']);
    binderCpuUs = Number(reply['cpu_us']);
    binderEld = Math.round(Number(reply['eld_p99_ms']) * 10) / 10;
    late = Number(reply['late']);
    offered = Number(reply['offered']);
    sent = Number(reply['sent']);
    const h = decodeHistogram(String(reply['histogram']));
    p50 = h.totalCount > 0 ? h.getValueAtPercentile(50) : null;
    p99 = h.totalCount > 0 ? h.getValueAtPercentile(99) : null;
  } else {
    await new Promise((r) => setTimeout(r, windowMs));
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpu = cpuSeconds(balancer.pid) - cpu0;
  const waits = [balancer.pid, sims.process.pid!, binder.process.pid!].map((pid, i) => round1(((runQueueWaitSeconds(pid) - waits0[i]!) / seconds) * 100));
  const s1 = await ask(sims, { type: 'stats' });
  const simSeconds = (Date.now() - ts0) / 1000;
  const m1 = await scrape(balancer);
  const metricsSeconds = (Date.now() - tm0) / 1000;
  const members = m1.get('rebind_group_members') ?? 0;
  const reportsApplied = (m1.get('rebind_load_reports_total') ?? 0) - (m0.get('rebind_load_reports_total') ?? 0);
  const simReports = Number(s1['reports']) - Number(s0['reports']);
  const replicasCpuPct = round1(((Number(s1['cpu_us']) - Number(s0['cpu_us'])) / 1e6 / simSeconds) * 100);
  const binderCpuPct = round1((binderCpuUs / 1e6 / (elapsedMs / 1000)) * 100);
  const generatorsCpuPct = round1(replicasCpuPct + binderCpuPct);
  const achieved = ok / (elapsedMs / 1000);
  const why: string[] = [];
  if (generatorsCpuPct >= GENERATOR_CPU_LIMIT * 100) why.push(`generators at ${generatorsCpuPct} % of their core`);
  if (rate > 0 && late > GENERATOR_LATE_LIMIT * offered) why.push(`${late} of ${offered} binds sent late`);
  if (rate > 0 && sent < offered) why.push(`${sent} of ${offered} binds sent`);
  const lostInWindow = Number(s1['lost']) - Number(s0['lost']);
  if (members < replicas || lostInWindow > 0) why.push(`${lostInWindow} replicas lost in the window, ${members} of ${replicas} members at its end (${String(s1['first_loss'])})`);
  // Whole intervals only: a replica reports floor or ceil(window / interval) times in a window.
  const reportsDue = replicas * Math.floor((simSeconds * 1000) / REPORT_INTERVAL_MS);
  if (simReports < REPORTS_KEPT_LIMIT * reportsDue) why.push(`replicas sent ${simReports} reports of ${reportsDue} due`);
  const generatorLimited = why.length > 0;
  const contended = waits[0]! > CONTENDED_WAIT_PCT;
  const saturated = !generatorLimited && !contended && rate > 0 && (achieved < ACHIEVED_LIMIT * rate || (p99 ?? 0) > SATURATED_P99_US);
  const heap = m1.get('nodejs_heap_size_used_bytes');
  const gc0 = m0.get('nodejs_gc_duration_seconds_sum');
  const gc1 = m1.get('nodejs_gc_duration_seconds_sum');
  return {
    build,
    round,
    replicas,
    report_interval_ms: REPORT_INTERVAL_MS,
    members,
    sim_reports_per_s: Math.round(simReports / simSeconds),
    offered_binds_per_s: rate,
    binds_per_s: Math.round(achieved),
    binds_ok: ok,
    binds_counted_by_balancer: (m1.get('rebind_binds_total') ?? 0) - (m0.get('rebind_binds_total') ?? 0),
    bind_p50_us: p50,
    bind_p99_us: p99,
    failed_binds: failed,
    balancer_cpu_pct: round1((cpu / seconds) * 100),
    balancer_gc_pct: gc0 !== undefined && gc1 !== undefined ? Math.round(((gc1 - gc0) / metricsSeconds) * 1000) / 10 : null,
    balancer_gc_minor_pct: gc1 !== undefined ? Math.round((((m1.get('gc_seconds_minor') ?? 0) - (m0.get('gc_seconds_minor') ?? 0)) / metricsSeconds) * 1000) / 10 : null,
    balancer_rss_mb: rssMb(balancer.pid),
    balancer_heap_used_mb: heap !== undefined ? round1(heap / 1048576) : null,
    reports_per_s: Math.round(reportsApplied / metricsSeconds),
    binder_cpu_pct: binderCpuPct,
    binder_eld_p99_ms: binderEld,
    binds_late: late,
    replicas_cpu_pct: replicasCpuPct,
    replicas_eld_p99_ms: Math.round(Number(s1['eld_p99_ms']) * 10) / 10,
    generators_cpu_pct: generatorsCpuPct,
    balancer_runqueue_wait_pct: waits[0]!,
    generators_runqueue_wait_pct: Math.max(waits[1]!, waits[2]!),
    generator_limited: generatorLimited,
    generator_limited_why: generatorLimited ? why.join('; ') : null,
    core_contended: contended,
    saturated,
  };
}

interface LadderResult {
  points: Point[];
  /** Balancer RSS before any replica attached, and with them attached and idle (MB). */
  rss_before_replicas_mb: number;
  rss_idle_mb: number;
  /** The simulated replicas' CPU per report they sent (µs), from the idle point. */
  generator_cpu_us_per_report: number | null;
  /** The mass attachment of this ladder's replicas (this build's balancer). */
  attachment: AttachmentRecord;
}

async function measureReplicas(replicas: number, rates: number[], windowMs: number, setup: Setup, binderMode: string, progress: Progress, ab: AbOptions | null): Promise<LadderResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const c = await cluster(replicas, setup, stops);
    // A/B: the other build's balancer with its own replicas and binder, on the same cores.
    const other = ab !== null ? await cluster(replicas, { ...setup, ...(ab.cli !== undefined ? { cli: ab.cli } : {}), buildNodeArgs: ab.nodeArgs }, stops) : null;
    const points: Point[] = [];
    let rssIdle = rssMb(c.balancer.pid);
    let perReport: number | null = null;
    for (const rate of rates) {
      if (other !== null && ab !== null) {
        // Both builds, alternately (the first one swaps every round), ab.rounds times each.
        const round: Point[] = [];
        for (let r = 0; r < ab.rounds; r++) {
          const order: [typeof c, Build][] = r % 2 === 0 ? [[c, 'main'], [other, 'compare']] : [[other, 'compare'], [c, 'main']];
          for (const [cl, build] of order) {
            const p = await measurePoint(cl, replicas, rate, windowMs, binderMode, build, r);
            round.push(p);
            say(`  ${build} ${replicas} replicas, ${rate} binds/s, round ${r}: achieved ${p.binds_per_s}/s, p99 ${p.bind_p99_us ?? '-'} µs, balancer CPU ${p.balancer_cpu_pct} % (GC ${p.balancer_gc_pct ?? '-'} %, minor ${p.balancer_gc_minor_pct ?? '-'} %, waited ${p.balancer_runqueue_wait_pct} %)${p.generator_limited ? ` GENERATOR-LIMITED (${p.generator_limited_why})` : ''}${p.core_contended ? ' CORE CONTENDED' : ''}`);
          }
        }
        points.push(...round);
        progress.tick(`${replicas} replicas, ${rate} binds/s (A/B)`);
        // Past both balancers' saturation a higher rate says nothing more.
        if (rate > 0 && round.every((p) => p.saturated || p.generator_limited)) break;
        continue;
      }
      const p = await measurePoint(c, replicas, rate, windowMs, binderMode);
      points.push(p);
      if (rate === 0) {
        rssIdle = p.balancer_rss_mb;
        perReport = p.sim_reports_per_s > 0 ? Math.round(((p.replicas_cpu_pct / 100) * 1e6) / p.sim_reports_per_s) : null;
      }
      progress.tick(`${replicas} replicas, ${rate} binds/s`);
      const flag = p.saturated ? ' (balancer saturated)' : p.generator_limited ? ` (GENERATOR-LIMITED: ${p.generator_limited_why})` : p.core_contended ? ' (CORE CONTENDED: the balancer waited for its core)' : '';
      say(
        `  ${replicas} replicas, offered ${rate} binds/s: achieved ${p.binds_per_s}/s (${p.binds_ok} answered, ${p.binds_counted_by_balancer} counted by the balancer), p99 ${p.bind_p99_us ?? '-'} µs, ` +
          `balancer CPU ${p.balancer_cpu_pct} % (waited for its core ${p.balancer_runqueue_wait_pct} %), RSS ${p.balancer_rss_mb} MB; generators CPU ${p.generators_cpu_pct} % (binder ${p.binder_cpu_pct}, replicas ${p.replicas_cpu_pct}), ${p.binds_late} late${flag}`,
      );
      // Past the balancer's saturation (or the generators' limit) a higher rate says nothing more.
      if (rate > 0 && (p.saturated || p.generator_limited || p.core_contended)) break;
    }
    return { points, rss_before_replicas_mb: c.rssBefore, rss_idle_mb: rssIdle, generator_cpu_us_per_report: perReport, attachment: c.attachment };
  } finally {
    for (const s of stops.reverse()) await s();
  }
}

/** --compare-balancer: the other build's CLI and how many times each point is measured on each build. */
interface AbOptions {
  /** The other build's CLI entry; undefined: this build (compared under other node flags). */
  cli: string | undefined;
  rounds: number;
  /** Node flags of the compare side's balancer. */
  nodeArgs: string[];
}
/** Default rounds per point of an A/B run (each build measured this many times, alternately). */
const DEFAULT_AB_ROUNDS = 3;

const median = (xs: number[]): number | null => {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * The A/B summary per (replicas, rate): each build's medians over its
 * rounds of balancer CPU per bind (CPU above its own idle point's median,
 * per bind achieved; the whole CPU per bind when there is no idle point)
 * and bind p99, and new / old ratios; rounds that were core-contended or
 * generator-limited are counted, and left out of both builds' medians when
 * each build had other rounds (else every round counts, for both).
 */
function abSummary(points: Point[]) {
  const rows: { replicas: number; rate: number; build: Build; cpu_us_per_bind: number | null; cpu_us_per_report: number | null; gc_us_per_op: number | null; p99_us: number | null; binds_per_s: number | null; rss_mb: number | null; rounds: number; unreliable_rounds: number }[] = [];
  const keys = [...new Set(points.map((p) => `${p.replicas}:${p.offered_binds_per_s}`))];
  for (const key of keys) {
    const [replicas, rate] = key.split(':').map(Number) as [number, number];
    const reliableOf = (ps: Point[]) => ps.filter((p) => !p.core_contended && !p.generator_limited);
    const at = (build: Build) => points.filter((p) => p.build === build && p.replicas === replicas && p.offered_binds_per_s === rate);
    // One rule for both builds, so that the ratio compares like with like: reliable rounds only if each build has some.
    const reliableOnly = reliableOf(at('main')).length > 0 && reliableOf(at('compare')).length > 0;
    for (const build of ['main', 'compare'] as const) {
      const all = at(build);
      if (all.length === 0) continue;
      const reliable = reliableOf(all);
      const use = reliableOnly ? reliable : all;
      const idle = median(points.filter((p) => p.build === build && p.replicas === replicas && p.offered_binds_per_s === 0).map((p) => p.balancer_cpu_pct)) ?? 0;
      rows.push({
        replicas,
        rate,
        build,
        cpu_us_per_bind: rate > 0 ? median(use.filter((p) => p.binds_per_s > 0).map((p) => Math.round((((p.balancer_cpu_pct - idle) / 100) * 1e6) / p.binds_per_s))) : null,
        // The idle point: all of the balancer's CPU per report applied.
        cpu_us_per_report: rate === 0 ? median(use.filter((p) => p.reports_per_s > 0).map((p) => round1(((p.balancer_cpu_pct / 100) * 1e6) / p.reports_per_s))) : null,
        // GC pause time per bind (per report applied at the idle point).
        gc_us_per_op: median(use.filter((p) => p.balancer_gc_pct !== null && (rate === 0 ? p.reports_per_s : p.binds_per_s) > 0).map((p) => round1(((p.balancer_gc_pct! / 100) * 1e6) / (rate === 0 ? p.reports_per_s : p.binds_per_s)))),
        rss_mb: median(use.map((p) => p.balancer_rss_mb)),
        p99_us: median(use.filter((p) => p.bind_p99_us !== null).map((p) => p.bind_p99_us!)),
        binds_per_s: rate > 0 ? median(use.map((p) => p.binds_per_s)) : null,
        rounds: all.length,
        unreliable_rounds: all.length - reliable.length,
      });
    }
  }
  return rows;
}

/** Binds `count` more distinct clients at MEMORY_BIND_RATE; throws if some failed. */
async function bindClients(binder: Worker, count: number, binderMode: string): Promise<void> {
  const reply = await ask(binder, { type: 'binds', rate: MEMORY_BIND_RATE, durationMs: Math.ceil((count / MEMORY_BIND_RATE) * 1000), mode: binderMode, lateMs: LATE_SEND_MS });
  if (Number(reply['failed']) > 0) throw new Error(`memory point: ${String(reply['failed'])} of ${String(reply['offered'])} binds failed`);
}

/**
 * Memory with clients held, in one balancer with `replicas` replicas
 * attached: each step binds rebind clients (distinct ids, held in the
 * ledger) or opens xDS ADS streams (each an xDS client bound by its EDS
 * answer) up to its total, then the balancer's RSS and heap are read.
 */
async function measureMemory(replicas: number, steps: MemoryStep[], setup: Setup, binderMode: string, progress: Progress): Promise<MemoryPoint[]> {
  const out: MemoryPoint[] = [];
  const maxXds = Math.max(0, ...steps.filter((s) => s.kind === 'xds').map((s) => s.total));
  const stops: (() => Promise<void>)[] = [];
  try {
    // No settling: each reading waits memorySettleMs anyway, and no rates are measured.
    const c = await cluster(replicas, maxXds > 0 ? { ...setup, xdsMaxStreams: maxXds + 100 } : setup, stops, false);
    // The warm-up's clients are bound and held too.
    const have = { rebind: c.warmedClients, xds: 0 };
    const reading = async (step: MemoryPoint['step']) => {
      await new Promise((r) => setTimeout(r, memorySettleMs));
      const m = await scrape(c.balancer);
      const heap = m.get('nodejs_heap_size_used_bytes');
      const p: MemoryPoint = {
        step,
        replicas,
        rebind_clients: have.rebind,
        xds_streams: have.xds,
        ledger_bindings: m.get('rebind_bindings') ?? 0,
        balancer_xds_streams: m.get('rebind_xds_streams') ?? 0,
        balancer_rss_mb: rssMb(c.balancer.pid),
        balancer_heap_used_mb: heap !== undefined ? round1(heap / 1048576) : null,
      };
      out.push(p);
      progress.tick(`memory: ${have.rebind} clients, ${have.xds} xDS streams`);
      say(`  memory, ${replicas} replicas: ${have.rebind} rebind clients, ${have.xds} xDS streams (${p.balancer_xds_streams} at the balancer), ${p.ledger_bindings} in the ledger: RSS ${p.balancer_rss_mb} MB, heap used ${p.balancer_heap_used_mb ?? '-'} MB`);
    };
    await reading('start');
    let xdsWorker: Worker | null = null;
    for (const step of steps) {
      const more = step.total - have[step.kind];
      if (more <= 0) throw new Error(`--memory: ${step.kind}:${step.total} is not above the ${have[step.kind]} already held (totals are cumulative)`);
      if (step.kind === 'rebind') {
        await bindClients(c.binder, more, binderMode);
      } else {
        if (xdsWorker === null) {
          const w = (await Worker.start('xds', 'scale-xds.js', ['--balancer', c.balancer.control])).worker;
          stops.push(() => w.stop());
          c.pin(w.process.pid!, GENERATOR_CPU);
          xdsWorker = w;
        }
        await ask(xdsWorker, { type: 'open', n: more });
      }
      have[step.kind] = step.total;
      await reading(step.kind);
    }
  } finally {
    for (const s of stops.reverse()) await s();
  }
  return out;
}

/** Profiles one point (`replicas`, `rate`) with node --cpu-prof; returns the .cpuprofile's path in `dir`. */
async function profilePoint(replicas: number, rate: number, windowMs: number, setup: Setup, binderMode: string, dir: string): Promise<string> {
  const profDir = mkdtempSync(path.join(setup.tmp, 'prof-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const c = await cluster(replicas, { ...setup, nodeArgs: ['--cpu-prof', '--cpu-prof-dir', profDir] }, stops);
    const p = await measurePoint(c, replicas, rate, windowMs, binderMode);
    say(`  profiled ${replicas} replicas at ${rate} binds/s: balancer CPU ${p.balancer_cpu_pct} %, ${p.binds_per_s} binds/s`);
  } finally {
    // SIGTERM: the balancer stops gracefully and Node writes the profile on exit.
    for (const s of stops.reverse()) await s();
  }
  const written = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (written.length === 0) throw new Error(`--cpu-prof: the balancer wrote no profile into ${profDir}`);
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `scale-${replicas}-replicas-${rate}-binds.cpuprofile`);
  renameSync(path.join(profDir, written[0]!), file);
  return file;
}

/** The flame graph of a profile, written beside it (`.svg`). */
function flameGraph(profileFile: string, title: string): string {
  const svgFile = profileFile.replace(/\.cpuprofile$/, '.svg');
  writeFileSync(svgFile, renderFlameGraph(JSON.parse(readFileSync(profileFile, 'utf8')), title));
  return svgFile;
}

/** Figures derived from the points, per replica count and for memory. */
function derive(ladders: LadderResult[], memory: MemoryPoint[]) {
  const perReplicas = ladders.map((l) => {
    // The derived figures are this build's; an A/B run's other build is in `ab`.
    const ps = l.points.filter((p) => p.build === 'main');
    const replicas = ps[0]!.replicas;
    const idle = ps.find((p) => p.offered_binds_per_s === 0);
    const trusted = ps.filter((p) => p.offered_binds_per_s > 0 && !p.generator_limited && !p.core_contended);
    const unsaturated = trusted.filter((p) => !p.saturated);
    const top = unsaturated.at(-1);
    const at10k = trusted.find((p) => p.offered_binds_per_s === 10_000);
    const binders = ps.filter((p) => p.offered_binds_per_s > 0 && p.binds_per_s > 0);
    return {
      replicas,
      cpu_us_per_report: idle && idle.reports_per_s > 0 ? Math.round(((idle.balancer_cpu_pct / 100) * 1e6) / idle.reports_per_s) : null,
      cpu_us_per_bind: idle && top && top.binds_per_s > 0 ? Math.round((((top.balancer_cpu_pct - idle.balancer_cpu_pct) / 100) * 1e6) / top.binds_per_s) : null,
      /** Highest rate the balancer kept up with while the generators were not limited. */
      max_binds_per_s_balancer_limited: top?.binds_per_s ?? null,
      /** Whether the ladder reached the balancer's saturation (else the maximum is a lower bound). */
      balancer_saturation_reached: trusted.some((p) => p.saturated),
      bind_p99_us_at_10k: at10k?.bind_p99_us ?? null,
      bytes_per_replica: Math.round(((l.rss_idle_mb - l.rss_before_replicas_mb) * 1048576) / replicas),
      generator_cpu_us_per_report: l.generator_cpu_us_per_report,
      attachment: l.attachment,
      generator_cpu_us_per_bind: binders.length > 0 ? Math.round(Math.max(...binders.map((p) => ((p.binder_cpu_pct / 100) * 1e6) / p.binds_per_s))) : null,
    };
  });
  /** Bytes of RSS per unit added, from the step of `kind` that added the most (its reading minus the one before). */
  const perUnit = (kind: MemoryStep['kind'], count: (m: MemoryPoint) => number) => {
    let best: { delta: number; bytes: number } | null = null;
    for (let i = 1; i < memory.length; i++) {
      if (memory[i]!.step !== kind) continue;
      const delta = count(memory[i]!) - count(memory[i - 1]!);
      if (delta > 0 && (best === null || delta > best.delta)) best = { delta, bytes: Math.round(((memory[i]!.balancer_rss_mb - memory[i - 1]!.balancer_rss_mb) * 1048576) / delta) };
    }
    return best?.bytes ?? null;
  };
  return {
    per_replicas: perReplicas,
    bytes_per_bound_client: perUnit('rebind', (m) => m.rebind_clients),
    bytes_per_xds_stream: perUnit('xds', (m) => m.xds_streams),
  };
}

async function chart(points: Point[]): Promise<string> {
  const values = points.map((p) => ({ ...p, series: `${p.replicas} replicas${p.build === 'compare' ? ' (compare)' : ''}` }));
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind balancer alone (pinned to one core): CPU and bind latency, reports every 1 s; hollow points: generator-limited',
    data: { values },
    hconcat: [
      {
        title: 'balancer CPU (% of its core) vs binds/s',
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
        title: 'load generators CPU (% of their core) vs binds/s',
        width: 300,
        height: 220,
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'binds_per_s', type: 'quantitative', title: 'binds/s achieved' },
          y: { field: 'generators_cpu_pct', type: 'quantitative', title: 'CPU %' },
          color: { field: 'series', type: 'nominal', title: null },
        },
      },
    ],
  });
}

interface Results {
  machine: ReturnType<typeof machine>;
  pinning: Pinning;
  /** Node flags the balancer ran with (default: the one-core flags). */
  balancer_node_args: string[];
  window_s: number;
  points: Point[];
  memory: MemoryPoint[];
  derived: ReturnType<typeof derive>;
  /** --compare-balancer runs: the other build's CLI and the per-point medians of both builds. */
  ab: { compare_balancer: string; balancer_node_args: string[]; compare_node_args: string[]; rounds: number; summary: ReturnType<typeof abSummary> } | null;
  profiles: { point: string; cpuprofile: string; flame_graph: string | null }[];
}

const dash = (x: number | null | undefined) => (x === null || x === undefined ? '-' : String(x));

/** The A/B table: per point, each build's medians and the ratio new (main) / old (compare). */
function abMarkdown(ab: NonNullable<Results['ab']>): string[] {
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a != null && b != null && b > 0 ? (a / b).toFixed(2) : '-');
  const lines = [
    `**A/B** against \`${ab.compare_balancer}\`${ab.compare_node_args.length > 0 ? ` run with \`${ab.compare_node_args.join(' ')}\`` : ''} ("compare"; "main" is this build${ab.balancer_node_args.length > 0 ? `, run with \`${ab.balancer_node_args.join(' ')}\`` : ''}): every point measured ${ab.rounds} times on each balancer, alternately, both balancers alive on the balancer core throughout (each with its own replicas and binder on the generators' core). Medians over rounds that were neither core-contended nor generator-limited when each build had such rounds at that point, else over all rounds of both (the count of unreliable rounds is given). CPU per bind: balancer CPU above the same balancer's idle point, per bind achieved; CPU per report (idle points): all of its CPU / reports applied per second.`,
    '',
    '| replicas | offered binds/s | main: CPU µs/bind (µs/report at 0) | compare: CPU µs/bind (µs/report at 0) | ratio | main: p99 µs | compare: p99 µs | ratio | main: binds/s | compare: binds/s | GC µs per bind or report (main / compare) | RSS MB (main / compare) | unreliable rounds (main / compare) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const m of ab.summary.filter((r) => r.build === 'main')) {
    const o = ab.summary.find((r) => r.build === 'compare' && r.replicas === m.replicas && r.rate === m.rate);
    const mc = m.rate === 0 ? m.cpu_us_per_report : m.cpu_us_per_bind;
    const oc = m.rate === 0 ? o?.cpu_us_per_report : o?.cpu_us_per_bind;
    lines.push(
      `| ${m.replicas} | ${m.rate} | ${dash(mc)} | ${dash(oc)} | ${ratio(mc, oc)} | ${dash(m.p99_us)} | ${dash(o?.p99_us)} | ${ratio(m.p99_us, o?.p99_us)} | ${dash(m.binds_per_s)} | ${dash(o?.binds_per_s)} | ${dash(m.gc_us_per_op)} / ${dash(o?.gc_us_per_op)} | ${dash(m.rss_mb)} / ${dash(o?.rss_mb)} | ${m.unreliable_rounds}/${m.rounds} / ${o?.unreliable_rounds ?? '-'}/${o?.rounds ?? '-'} |`,
    );
  }
  lines.push('');
  return lines;
}

function markdown(json: Results, command: string): string {
  const pin = json.pinning;
  const limited = json.points.filter((p) => p.generator_limited);
  const m = json.machine;
  return [
    '# Scale',
    '',
    `\`${command}\` — the balancer alone: one balancer process, simulated replicas over real control streams (one connection each) reporting every ${REPORT_INTERVAL_MS} ms, new rebind clients (each a distinct client id: every request is a bind) at stepped open-loop rates (${json.window_s} s per point), stepping stops at the balancer's saturation (achieved < ${ACHIEVED_LIMIT * 100} % of offered or bind p99 > ${SATURATED_P99_US / 1000} ms while the generators were not limited). Bind latency runs from when the bind was written (binds due within 2 ms go out in one write); binds written late are counted instead. The group allows ${json.derived.per_replicas[0]?.attachment.missed_reports ?? DEFAULT_MISSED_REPORTS} missed reports (default ${DEFAULT_MISSED_REPORTS}); every point checks that all replicas are still members. Machine: ${m.cpus} cores, ${m.model}, Node ${m.node}.`,
    '',
    pin.pinned
      ? `**Pinning:** the balancer on core ${pin.balancer_cpu} (\`taskset -a -p -c ${pin.balancer_cpu}\`), every load generator (replicas, binder, xDS clients) and this orchestrator on core ${pin.generators_cpu}. Balancer CPU is in % of its core; generators' CPU in % of theirs (all generators together).`
      : `**Not pinned** (${pin.why_not}): the balancer and the load generators shared the cores, so a saturation may be the machine's rather than the balancer's.`,
    '',
    json.balancer_node_args.length > 0
      ? `**Balancer node flags:** \`${json.balancer_node_args.join(' ')}\`${json.balancer_node_args.join(' ') === ONE_CORE_NODE_FLAGS.join(' ') ? " — the README's one-core deployment (\"Running on one core\"): V8's garbage collection on the balancer's main thread, a 4 MiB young generation" : ''}. \`--balancer-node-args ''\` runs it with V8's defaults.`
      : "**Balancer node flags:** none (V8's defaults: parallel and concurrent GC threads on the balancer's one core).",
    '',
    `**Generator-limited points** (generators together at ≥ ${GENERATOR_CPU_LIMIT * 100} % of their core, more than ${GENERATOR_LATE_LIMIT * 100} % of binds sent over ${LATE_SEND_MS} ms late, or replicas short of ${REPORTS_KEPT_LIMIT * 100} % of their reports) measure the generators, not the balancer: ${limited.length === 0 ? 'none.' : limited.map((p) => `${p.replicas} replicas at ${p.offered_binds_per_s} binds/s (${p.generator_limited_why})`).join('; ') + '.'}`,
    '',
    ...(json.ab !== null ? abMarkdown(json.ab) : []),
    '| build | replicas | offered binds/s | achieved binds/s | binds answered / counted by balancer | bind p50 µs | bind p99 µs | reports/s | balancer CPU % | RSS MB | heap MB | binder CPU % | replicas CPU % | generators CPU % | binds late | run-queue wait % (balancer / generators) | status |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...json.points.map(
      (p) =>
        `| ${p.build}${json.ab !== null ? ` #${p.round}` : ''} | ${p.replicas} | ${p.offered_binds_per_s} | ${p.binds_per_s} | ${p.binds_ok} / ${p.binds_counted_by_balancer} | ${dash(p.bind_p50_us)} | ${dash(p.bind_p99_us)} | ${p.reports_per_s} | ${p.balancer_cpu_pct} | ${p.balancer_rss_mb} | ${dash(p.balancer_heap_used_mb)} | ${p.binder_cpu_pct} | ${p.replicas_cpu_pct} | ${p.generators_cpu_pct} | ${p.binds_late} | ${p.balancer_runqueue_wait_pct} / ${p.generators_runqueue_wait_pct} | ${p.saturated ? 'balancer saturated' : p.generator_limited ? 'generator_limited' : p.core_contended ? 'core_contended' : 'ok'} |`,
    ),
    '',
    '| replicas | CPU per report (µs) | CPU per bind (µs) | max binds/s (balancer-limited) | bind p99 at 10k binds/s (µs) | bytes per attached replica | generator CPU per report (µs) | generator CPU per bind (µs) |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...json.derived.per_replicas.map(
      (d) =>
        `| ${d.replicas} | ${dash(d.cpu_us_per_report)} | ${dash(d.cpu_us_per_bind)} | ${dash(d.max_binds_per_s_balancer_limited)}${d.balancer_saturation_reached ? '' : ' (not saturated: a lower bound)'} | ${dash(d.bind_p99_us_at_10k)} | ${d.bytes_per_replica} | ${dash(d.generator_cpu_us_per_report)} | ${dash(d.generator_cpu_us_per_bind)} |`,
    ),
    '',
    '| replicas | attachment s | missedReports | dropped for silence while attaching | of them never that silent at their end | their longest silence at their end, median ms | balancer loop delay p99 / max ms | replicas\' loop delay max ms | replicas\' report timers late, max ms |',
    '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...json.derived.per_replicas.map(({ attachment: a }) => `| ${a.replicas} | ${a.attach_s} | ${a.missed_reports} | ${a.silence_drops} | ${a.silence_drops_never_silent} | ${dash(a.silence_drop_replica_silent_p50_ms)} | ${dash(a.balancer_loop_lag_p99_ms)} / ${dash(a.balancer_loop_lag_max_ms)} | ${a.replicas_loop_lag_max_ms} | ${a.report_timer_late_max_ms} |`),
    '',
    'Attachment: all replicas attached at once (50 at a time, each on its own connection), until every one was a member. A replica dropped for silence attaches again a second later. "Never that silent at their end": the replica had never gone missedReports intervals without writing a report, so the drop was the balancer\'s lag (or the network\'s), not the replica\'s. Loop delays: the balancer\'s from its /metrics (nodejs_eventloop_lag_*, restarted at each scrape: the largest p99 and maximum of the scrapes from the attachment\'s start until all were members); the replicas\' from their own process, over the same time.',
    '',
    ...(json.memory.length > 0
      ? [
          '| step | replicas | rebind clients bound | xDS streams (at the balancer) | in the ledger | RSS MB | heap used MB |',
          '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
          ...json.memory.map((p) => `| ${p.step} | ${p.replicas} | ${p.rebind_clients} | ${p.xds_streams} (${p.balancer_xds_streams}) | ${p.ledger_bindings} | ${p.balancer_rss_mb} | ${dash(p.balancer_heap_used_mb)} |`),
          '',
          `One balancer, the steps in order, totals cumulative. Bytes per bound client (RSS growth over the largest rebind step / clients it added): ${dash(json.derived.bytes_per_bound_client)}; per xDS stream: ${dash(json.derived.bytes_per_xds_stream)}. The ledger remembers at most 100,000 clients (MAX_REMEMBERED_BINDINGS, src/balancer/ledger.ts); heap used is nodejs_heap_size_used_bytes from /metrics, read ${memorySettleMs / 1000} s after binding, garbage included.`,
          '',
        ]
      : []),
    `Run-queue wait: the share of the window a process was ready to run but its core was busy with another process (/proc/<pid>/schedstat): near 0 on a quiet machine; a point where the balancer waited more than ${CONTENDED_WAIT_PCT} % is marked core_contended (a shared core, not the balancer alone) and, like a generator-limited one, is not taken for its saturation; stepping stops there.`,
    '',
    'CPU per report: idle balancer CPU / reports per second. CPU per bind: extra balancer CPU at the highest rate it kept up with (generators not limited) / binds per second. Bytes per attached replica: RSS with the replicas attached and idle minus RSS before they attached, / replicas. Generator CPU per bind: the binder\'s CPU / binds (its highest); per report: the simulated replicas\' CPU / reports at the idle point. Binds per point past 100,000 clients evict the least recently bound from the ledger (its bound), so the ladder\'s higher rates include evictions, as a balancer with a long-running fleet would.',
    ...(json.profiles.length > 0 ? ['', ...json.profiles.map((p) => `Profile of ${p.point}: \`${p.cpuprofile}\`${p.flame_graph !== null ? `, flame graph \`${p.flame_graph}\`` : ''} (node --cpu-prof over the balancer's whole life: start, attachment, settling and the point's window).`)] : []),
  ].join('\n');
}

interface Options {
  quick?: boolean;
  out?: string;
  missedReports?: string;
  replicas?: string;
  rates?: string;
  ratesLarge?: string;
  window?: string;
  memory?: string;
  memoryReplicas?: string;
  cpuProf?: string;
  binder: string;
  compareBalancer?: string;
  abRounds?: string;
  balancerNodeArgs?: string;
  compareNodeArgs?: string;
}

/** Splits a --*-node-args value into node flags (each must start with '-'). */
function parseNodeArgs(name: string, text: string | undefined, fallback: readonly string[] = []): string[] {
  if (text === undefined) return [...fallback];
  const args = text.split(/\s+/).filter((a) => a.length > 0);
  const bad = args.find((a) => !a.startsWith('-'));
  if (bad !== undefined) throw new Error(`--${name}: node flags separated by spaces, each starting with '-' (got ${JSON.stringify(bad)})`);
  return args;
}

/**
 * The memory steps: 10,000 rebind clients; 1,000 then 10,000 of them xDS
 * streams; 100,000 in all (90,000 rebind + 10,000 xDS: the ledger holds
 * 100,000, MAX_REMEMBERED_BINDINGS, so nobody is evicted).
 */
const DEFAULT_MEMORY_STEPS = 'rebind:10000,xds:1000,xds:10000,rebind:90000';
const QUICK_MEMORY_STEPS = 'rebind:500,xds:50';

function parseMemorySteps(text: string): MemoryStep[] {
  if (text === '') return [];
  return text.split(',').map((part) => {
    const m = /^(rebind|xds):(\d+)$/.exec(part);
    if (m === null || Number(m[2]) < 1) throw new Error(`--memory: each step is rebind:N or xds:N with N >= 1 (got ${part})`);
    return { kind: m[1] as MemoryStep['kind'], total: Number(m[2]) };
  });
}

/** Replica counts at or above this get the shorter ladder (`--rates-large`). */
const LARGE_FLEET = 5000;

async function main(opts: Options): Promise<void> {
  const list = (name: string, text: string | undefined, fallback: number[]) => {
    if (text === undefined) return fallback;
    if (text === '') return [];
    const values = text.split(',').map(Number);
    if (values.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`--${name} must be comma-separated non-negative integers (got ${text})`);
    return values;
  };
  const quick = opts.quick === true;
  if (quick) {
    memorySettleMs = 500;
    settleIntervals = 1;
    warmupMs = 300;
  }
  const replicaCounts = list('replicas', opts.replicas, quick ? [20] : [1000, 10_000]);
  const rates = list('rates', opts.rates, quick ? [0, 1000] : [0, 2000, 5000, 10_000, 15_000, 20_000, 25_000, 30_000, 40_000, 50_000]);
  const ratesLarge = list('rates-large', opts.ratesLarge, quick ? rates : [0, 2000, 5000, 10_000, 20_000]);
  const memorySteps = parseMemorySteps(opts.memory ?? (quick ? QUICK_MEMORY_STEPS : DEFAULT_MEMORY_STEPS));
  const memoryReplicas = list('memory-replicas', opts.memoryReplicas, quick ? [20] : [1000])[0] ?? 1000;
  if (opts.missedReports !== undefined) {
    missedReports = Number(opts.missedReports);
    if (!Number.isInteger(missedReports) || missedReports < 1 || missedReports > 1000) throw new Error(`--missed-reports must be an integer 1-1000 (got ${opts.missedReports})`);
  }
  const windowMs = opts.window !== undefined ? Number(opts.window) * 1000 : quick ? 1500 : 10_000;
  if (!(windowMs >= 500 && windowMs <= 600_000)) throw new Error(`--window must be 0.5-600 seconds (got ${opts.window})`);
  if (opts.binder !== 'raw' && opts.binder !== 'http2') throw new Error(`--binder must be raw or http2 (got ${opts.binder})`);
  let profile: { replicas: number; rate: number } | null = null;
  if (opts.cpuProf !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(opts.cpuProf);
    if (m === null) throw new Error(`--cpu-prof must be REPLICAS:BINDS_PER_S, e.g. 1000:10000 (got ${opts.cpuProf})`);
    profile = { replicas: Number(m[1]), rate: Number(m[2]) };
  }
  let ab: AbOptions | null = null;
  // The balancer runs as the README's one-core deployment; --balancer-node-args '' gives it V8's defaults.
  const balancerNodeArgs = parseNodeArgs('balancer-node-args', opts.balancerNodeArgs, ONE_CORE_NODE_FLAGS);
  // The compare side runs with the same flags unless told otherwise.
  const compareNodeArgs = parseNodeArgs('compare-node-args', opts.compareNodeArgs, balancerNodeArgs);
  if (opts.compareBalancer !== undefined || opts.compareNodeArgs !== undefined) {
    if (opts.compareBalancer !== undefined && !existsSync(opts.compareBalancer)) throw new Error(`--compare-balancer: no such file ${opts.compareBalancer} (the compiled CLI entry of another build, e.g. /tmp/old/dist/src/cli/main.js)`);
    const rounds = opts.abRounds !== undefined ? Number(opts.abRounds) : DEFAULT_AB_ROUNDS;
    if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new Error(`--ab-rounds must be an integer 1-20 (got ${opts.abRounds})`);
    ab = { cli: opts.compareBalancer !== undefined ? path.resolve(opts.compareBalancer) : undefined, rounds, nodeArgs: compareNodeArgs };
  } else if (opts.abRounds !== undefined) throw new Error('--ab-rounds needs --compare-balancer or --compare-node-args');
  // A --quick run never lands on the committed results.
  const out = opts.out ?? (quick ? mkdtempSync(path.join(tmpdir(), 'rebind-scale-quick-')) : RESULTS_DIR);
  const whyNot = pinningUnavailable();
  const pinning: Pinning = whyNot === null ? { pinned: true, balancer_cpu: BALANCER_CPU, generators_cpu: GENERATOR_CPU, why_not: null } : { pinned: false, balancer_cpu: null, generators_cpu: null, why_not: whyNot };
  if (pinning.pinned) pinToCpu(process.pid, GENERATOR_CPU);
  else say(`not pinned: ${whyNot}`);
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-scale-'));
  const setup: Setup = { tmp, pinning, buildNodeArgs: balancerNodeArgs };
  const progress = new Progress('scale', replicaCounts.reduce((n, r) => n + (r >= LARGE_FLEET ? ratesLarge : rates).length, 0) + memorySteps.length + 2);
  const ladders: LadderResult[] = [];
  try {
    for (const n of replicaCounts) {
      say(`${n} replicas`);
      ladders.push(await measureReplicas(n, n >= LARGE_FLEET ? ratesLarge : rates, windowMs, setup, opts.binder, progress, ab));
    }
    const memory = memorySteps.length > 0 ? (say(`memory, ${memoryReplicas} replicas`), await measureMemory(memoryReplicas, memorySteps, setup, opts.binder, progress)) : [];
    const profiles: Results['profiles'] = [];
    if (profile !== null) {
      say(`profiling ${profile.replicas} replicas at ${profile.rate} binds/s`);
      const file = await profilePoint(profile.replicas, profile.rate, windowMs, setup, opts.binder, path.join(out, 'profiles'));
      const svg = flameGraph(file, `rebind balancer: ${profile.replicas} replicas, ${profile.rate} binds/s`);
      profiles.push({ point: `${profile.replicas}:${profile.rate}`, cpuprofile: path.relative(out, file), flame_graph: path.relative(out, svg) });
    }
    progress.stop();
    const points = ladders.flatMap((l) => l.points);
    const json: Results = { machine: machine(), pinning, balancer_node_args: balancerNodeArgs, window_s: windowMs / 1000, points, memory, derived: derive(ladders, memory), ab: ab !== null ? { compare_balancer: ab.cli ?? 'this build', balancer_node_args: balancerNodeArgs, compare_node_args: compareNodeArgs, rounds: ab.rounds, summary: abSummary(points) } : null, profiles };
    const command = `npm run bench:scale${quick ? ' -- --quick' : ''}`;
    const md = markdown(json, command);
    const files = writeResults(out, 'scale', json, md, await chart(points));
    say(md);
    say(`wrote ${files.join(', ')}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const program = new Command('bench:scale')
  .description('The balancer alone (pinned to one core, load generators on another): CPU and memory with many replicas reporting, clients being bound, clients and xDS streams held.')
  .option('--quick', 'CI smoke size: 20 replicas, 0 and 1,000 binds/s, 1.5 s per point, 500 clients and 50 xDS streams held; written to a temporary directory unless --out')
  .option('--replicas <list>', 'comma-separated replica counts of the bind ladders (default 1000,10000)')
  .option('--rates <list>', 'offered bind rates per second, 0 = reports only (default 0,2000,5000,10000,15000,...,50000; stepping stops at saturation)')
  .option('--rates-large <list>', `the shorter ladder for ${LARGE_FLEET}+ replicas (default 0,2000,5000,10000,20000)`)
  .option('--window <seconds>', 'seconds per point (default 10; --quick 1.5)')
  .option('--memory <steps>', `memory steps, in order, cumulative totals: rebind:N (rebind clients bound and held) or xds:N (xDS ADS streams held) (default ${DEFAULT_MEMORY_STEPS}; --quick ${QUICK_MEMORY_STEPS}; empty: none)`)
  .option('--memory-replicas <n>', 'replicas attached during the memory points (default 1000)')
  .option('--cpu-prof <replicas:rate>', 'also profile one point with node --cpu-prof (e.g. 1000:10000, 10000:0) into <out>/profiles/')
  .option('--binder <mode>', 'how binds are sent: raw (HTTP/2 frames, cheapest) or http2 (node:http2 client)', 'raw')
  .option('--compare-balancer <main.js>', "A/B: also run another build's balancer (its compiled CLI entry, e.g. /tmp/old/dist/src/cli/main.js) and measure every bind-ladder point on both, alternately")
  .option('--compare-node-args <flags>', "A/B: node flags of the compare side's balancer, space-separated (e.g. '' for V8's defaults; default: the same as --balancer-node-args); without --compare-balancer the compare side is this build")
  .option('--balancer-node-args <flags>', `node flags of this build's balancer (every point, and the main side of an A/B), space-separated (default: the one-core flags, ${ONE_CORE_NODE_FLAGS.join(' ')}; '' for V8's defaults)`)
  .option('--ab-rounds <n>', `with --compare-balancer / --compare-node-args: times each point is measured on each balancer (default ${DEFAULT_AB_ROUNDS}, 1-20)`)
  .option('--missed-reports <n>', `the group's missedReports (default: the balancer's, ${DEFAULT_MISSED_REPORTS})`)
  .option('--out <dir>', 'where to write scale.{json,md,svg} (default bench/results; --quick: a temporary directory)');

runBenchCommand(program, main);
