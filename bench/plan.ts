/**
 * Plan benchmark (issue 15): how long one minimum-dispersion plan of a
 * large group takes, in this process, without sockets.
 *
 * Each point builds a realistic group state through the balancer's own code
 * (Registry.attach of every replica, two Group.applyReport per replica a
 * report interval apart, so loads are dampened): seeded, so every run and
 * every repetition sees the same state. Of the clients, SETS_SHARE
 * understand weighted bindings (a quarter of those are spread over 2..4
 * members already), HELD_SHARE are held by an earlier plan; client loads
 * are log-normal with a few heavy clients; replicas get clients with skew
 * (HOT_SHARE of them three times their share: over; NEW_SHARE a tenth:
 * under, as if just joined). Every replica lists all its clients
 * (topClients 1000): the planner sees every client.
 *
 * What is timed is what the analyzer runs per interval for the group,
 * Analyzer.analyze (liveness check, Group.plan, advisories to fake sinks),
 * split into phases by wrapping the group's plan and its strategy's plan:
 *   liveness: Analyzer.checkLiveness over every member;
 *   input:    Group.plan up to the strategy (members filtered, the
 *             PlanInput made: its entries, from members' clients and the
 *             ledger's holds, are built when the planner reads them);
 *   strategy: strategy.plan (planMinimumDispersion, with the entries it reads);
 *   apply:    Group.applyPlan (loads shifted, holds, transits, ledger bindings);
 *   advise:   the advisories built and sent (no voucher).
 * The state is rebuilt before each repetition (a plan changes it) and a
 * full GC runs before each timed analysis, so neither is counted.
 * Reports median and p95 of the repetitions, per phase and in total.
 * With --compare, each point also times the planner as it was before its
 * optimisation (test/support/minimum-dispersion-reference.ts; the group's
 * own code is the current one for both), the two interleaved repetition by
 * repetition, and the moves of both are checked to be the same number.
 * (The group builds the planner's flat list of entries only when it is
 * read: the reference reads it, so its input cost is in its strategy phase;
 * the current planner reads only the members and clients it looks at.)
 * With --baseline <src dir>, each point also times the whole analysis with
 * the balancer code of that directory (an older src/, e.g. made with
 * `git archive <commit> src | tar -x -C .prof/old`; inside the repository,
 * so it finds node_modules), interleaved the same way: old and new code
 * side by side, on the same machine at the same moment.
 * Writes bench/results/plan.{json,md} (not with --quick, unless --out).
 *
 *     npx tsx bench/plan.ts [--reps 21] [--quick] [--compare] [--baseline dir] [--points 10000x100000] [--out dir]
 */
import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { VirtualAction, VirtualTimeScheduler } from 'rxjs';
import pino from 'pino';
import { Analyzer } from '../src/balancer/analyzer';
import { parseBalancerConfig } from '../src/balancer/config';
import type { Group } from '../src/balancer/group';
import { Member, type AdvisorySink } from '../src/balancer/member';
import { Registry } from '../src/balancer/registry';
import type { Move, PlanInput, Strategy } from '../src/balancer/strategies/types';
import type { Advisory } from '../src/generated/rebind/v1/Advisory';
import type { LoadReport__Output } from '../src/generated/rebind/v1/LoadReport';
import { planMinimumDispersionReference } from '../test/support/minimum-dispersion-reference';
import { machine, RESULTS_DIR, say } from './lib/common';
import { seededRandom } from '../src/sim/rng';

const log = pino({ level: 'silent' });

/** Report interval of the group, ms (the default). */
const REPORT_INTERVAL_MS = 1000;
/** Clients that understand weighted bindings. */
const SETS_SHARE = 0.4;
/** Of those, clients already spread over 2..4 members. */
const SPREAD_SHARE = 0.25;
/** Clients held by an earlier plan (not movable). */
const HELD_SHARE = 0.02;
/** Replicas given three times their share of clients (over the mean). */
const HOT_SHARE = 0.05;
/** Replicas given a tenth of their share (under the mean, as if just joined). */
const NEW_SHARE = 0.05;
/** Clients with twenty times the typical load. */
const HEAVY_SHARE = 0.01;
/** Mean calls/s of one replica: client rates are scaled to it, so every point has the same evidence per member. */
const MEAN_REPLICA_CALLS_PER_S = 100;
/** Mean over median of the client rates drawn below (log-normal, sigma 0.8: e^0.32; heavy clients: x1.19). */
const MEAN_OVER_MEDIAN = Math.exp(0.32) * (1 + 19 * HEAVY_SHARE);

/** The points: replicas x clients. */
export const POINTS = [
  { replicas: 1_000, clients: 10_000 },
  { replicas: 1_000, clients: 100_000 },
  { replicas: 10_000, clients: 10_000 },
  { replicas: 10_000, clients: 100_000 },
] as const;

const PHASES = ['liveness', 'input', 'strategy', 'apply', 'advise'] as const;
type Phase = (typeof PHASES)[number];

class NullSink implements AdvisorySink {
  advisories = 0;
  sendAdvisory(_advisory: Advisory): boolean {
    this.advisories++;
    return true;
  }
  close(): void {}
}

function report(seq: number, clients: Map<string, { callsPerS: number; sets: boolean }>): LoadReport__Output {
  let total = 0;
  const topClients: LoadReport__Output['topClients'] = [];
  for (const [clientId, c] of clients) {
    total += c.callsPerS;
    topClients.push({ clientId, callsPerS: c.callsPerS, sets: c.sets });
  }
  topClients.sort((a, b) => b.callsPerS - a.callsPerS);
  return {
    seq,
    clientCount: clients.size,
    intervalMs: REPORT_INTERVAL_MS,
    callsPerS: total,
    inFlight: 0,
    latencyMs: 1,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    topClients,
    otherCallsPerS: 0,
    forwards: 0,
    draining: false,
  };
}

/** What each replica reports: its clients with their calls/s (seeded). */
export function layout(replicas: number, clients: number, seed: number): Map<string, { callsPerS: number; sets: boolean }>[] {
  const random = seededRandom(seed);
  const weights = Array.from({ length: replicas }, () => {
    const r = random();
    return r < HOT_SHARE ? 3 : r < HOT_SHARE + NEW_SHARE ? 0.1 : 1;
  });
  const cumulative: number[] = [];
  let sum = 0;
  for (const w of weights) cumulative.push((sum += w));
  const pick = (): number => {
    const x = random() * sum;
    let lo = 0;
    let hi = replicas - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  const out = Array.from({ length: replicas }, () => new Map<string, { callsPerS: number; sets: boolean }>());
  const median = (MEAN_REPLICA_CALLS_PER_S * replicas) / clients / MEAN_OVER_MEDIAN;
  for (let c = 0; c < clients; c++) {
    const id = `client-${c.toString(36).padStart(6, '0')}`;
    let calls = median * Math.exp(0.8 * gaussian());
    if (random() < HEAVY_SHARE) calls *= 20;
    calls = Math.round(calls * 100) / 100 + 0.01;
    const sets = random() < SETS_SHARE;
    const spread = sets && random() < SPREAD_SHARE ? 2 + Math.floor(random() * 3) : 1;
    const on = new Set<number>();
    while (on.size < Math.min(spread, replicas)) on.add(pick());
    for (const r of on) out[r]!.set(id, { callsPerS: calls / on.size, sets });
  }
  return out;
}

/** The balancer code a repetition runs: this tree's, or a baseline src directory's (--baseline). */
interface Core {
  Analyzer: typeof Analyzer;
  parseBalancerConfig: typeof parseBalancerConfig;
  Registry: typeof Registry;
  Member: typeof Member;
}

const CURRENT_CORE: Core = { Analyzer, parseBalancerConfig, Registry, Member };

/** The baseline's modules (the same paths in an older src/). */
function loadCore(srcDir: string): Core {
  const from = (file: string) => require(path.resolve(srcDir, file)) as Record<string, unknown>;
  return {
    Analyzer: from('balancer/analyzer')['Analyzer'] as typeof Analyzer,
    parseBalancerConfig: from('balancer/config')['parseBalancerConfig'] as typeof parseBalancerConfig,
    Registry: from('balancer/registry')['Registry'] as typeof Registry,
    Member: from('balancer/member')['Member'] as typeof Member,
  };
}

/** A group in the state `layout` describes, with its analyzer, at time `nowMs`. */
export function build(reports: ReturnType<typeof layout>, seed: number, core: Core = CURRENT_CORE) {
  const { Analyzer, parseBalancerConfig, Registry, Member } = core;
  const parsed = parseBalancerConfig({
    groups: [{ name: 'g', reportIntervalMs: REPORT_INTERVAL_MS, maxMembers: 100_000, topClients: 1000, strategy: 'minimum_dispersion' }],
  });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const scheduler = new VirtualTimeScheduler(VirtualAction, Number.POSITIVE_INFINITY);
  const registry = new Registry(parsed.value, log, seededRandom(seed + 1));
  const analyzer = new Analyzer(registry, scheduler, log);
  const group = registry.groups.get('g')!;
  const members: Member[] = reports.map((_, i) => {
    const address = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:50051`;
    const member = registry.attach({ protocolVersion: 1, group: 'g', address, methods: [{ path: '/p.S/M', kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, new NullSink(), 0);
    if (!(member instanceof Member)) throw new Error(member.message);
    return member;
  });
  const noise = seededRandom(seed + 2);
  const t1 = REPORT_INTERVAL_MS;
  const t2 = 2 * REPORT_INTERVAL_MS;
  members.forEach((m, i) => group.applyReport(m, report(1, reports[i]!), t1));
  members.forEach((m, i) => {
    const jittered = new Map([...reports[i]!].map(([id, c]) => [id, { ...c, callsPerS: c.callsPerS * (0.9 + 0.2 * noise()) }]));
    group.applyReport(m, report(2, jittered), t2);
  });
  const held = seededRandom(seed + 3);
  for (const r of reports) for (const id of r.keys()) if (held() < HELD_SHARE) group.ledger.hold(id, t2 + parsed.value.groups[0]!.holdMs);
  return { analyzer, group, nowMs: t2 + 1 };
}

interface Timing {
  total: number;
  phases: Record<Phase, number>;
  moves: number;
  clients: number;
}

/** Which planner a repetition runs: the strategy's own, the frozen pre-optimisation copy (--compare), or the baseline src's whole analysis (--baseline). */
type Planner = 'current' | 'reference' | 'baseline';

/**
 * What the timings read: wall-clock time (the default), or this process's
 * CPU time (user + system, all its threads: GC helpers included), which a
 * busy machine's scheduling leaves out (--clock cpu, for A/B runs on a
 * shared machine).
 */
let clock: () => number = () => performance.now();

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Runs one analysis of `group`, timed per phase (ms). */
function timedAnalysis(analyzer: Analyzer, group: Group, nowMs: number, planner: Planner): Timing {
  const marks: Partial<Record<'planStart' | 'strategyStart' | 'strategyEnd' | 'planEnd', number>> = {};
  let clients = 0;
  const strategy = (group as unknown as { strategy: Strategy }).strategy;
  const params = group.config.strategy.params;
  const strategyPlan =
    planner !== 'reference'
      ? strategy.plan
      : (input: PlanInput) => planMinimumDispersionReference(input, { tolerance: params['tolerance']!, minGain: params['minGain']!, maxMoves: params['maxMoves']! });
  (group as unknown as { strategy: Strategy }).strategy = {
    ...strategy,
    plan: (input: PlanInput): Move[] => {
      marks.strategyStart = clock();
      try {
        return strategyPlan(input);
      } finally {
        marks.strategyEnd = clock();
      }
    },
  };
  const groupPlan = group.plan.bind(group);
  group.plan = (at: number) => {
    marks.planStart = clock();
    try {
      return groupPlan(at);
    } finally {
      marks.planEnd = clock();
    }
  };
  // The entries the planner may see (reading input.clients would build them all: the group gives them lazily).
  for (const m of group.members.values()) clients += m.clients.size;
  const start = clock();
  const moves = analyzer.analyze(group, nowMs);
  const end = clock();
  const { planStart, strategyStart, strategyEnd, planEnd } = marks;
  if (planStart === undefined || strategyStart === undefined || strategyEnd === undefined || planEnd === undefined) throw new Error('the analysis made no plan: the state is balanced or unsettled');
  return {
    total: end - start,
    phases: { liveness: planStart - start, input: strategyStart - planStart, strategy: strategyEnd - strategyStart, apply: planEnd - strategyEnd, advise: end - planEnd },
    moves: moves.length,
    clients,
  };
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

const round = (x: number) => Math.round(x * 100) / 100;

export interface PointResult {
  planner: Planner;
  replicas: number;
  clients: number;
  /** Client entries the planner saw (one per client per member it is on, held ones included). */
  planned_client_entries: number;
  moves: number;
  reps: number;
  total_ms: { median: number; p95: number };
  phases_ms: Record<Phase, { median: number; p95: number; share: number }>;
}

/**
 * A full GC, run before each timed analysis. Sweeping is made synchronous
 * (part of the GC), or the sweep of the previous repetition's state (a
 * whole group of 100,000 clients) would go on in other threads during the
 * timed analysis: not the analysis' cost, and it took 15-25 ms of CPU.
 */
function gc(): () => void {
  setFlagsFromString('--no-concurrent-sweeping');
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Times `reps` analyses of each planner, interleaved (current, reference, current, ...), after `warmup` of each. */
export function runPoint(replicas: number, clients: number, reps: number, warmup: number, planners: readonly Planner[], baseline: Core | null = null): PointResult[] {
  const seed = replicas * 7 + clients;
  const reports = layout(replicas, clients, seed);
  const collect = gc();
  const timings = new Map<Planner, Timing[]>(planners.map((p) => [p, []]));
  for (let r = 0; r < warmup + reps; r++) {
    for (const planner of planners) {
      const { analyzer, group, nowMs } = build(reports, seed, planner === 'baseline' ? baseline! : CURRENT_CORE);
      collect();
      const t = timedAnalysis(analyzer, group, nowMs, planner);
      if (r >= warmup) timings.get(planner)!.push(t);
    }
  }
  const results = planners.map((p) => summary(p, replicas, clients, timings.get(p)!));
  if (new Set(results.map((r) => r.moves)).size !== 1) throw new Error(`the planners planned different numbers of moves: ${results.map((r) => `${r.planner} ${r.moves}`).join(', ')}`);
  return results;
}

function summary(planner: Planner, replicas: number, clients: number, timings: Timing[]): PointResult {
  const reps = timings.length;
  const median = quantile(timings.map((t) => t.total), 0.5);
  const phases = Object.fromEntries(
    PHASES.map((p) => {
      const values = timings.map((t) => t.phases[p]);
      const m = quantile(values, 0.5);
      return [p, { median: round(m), p95: round(quantile(values, 0.95)), share: round(m / median) }];
    }),
  ) as PointResult['phases_ms'];
  const moves = new Set(timings.map((t) => t.moves));
  if (moves.size !== 1) throw new Error(`repetitions planned different numbers of moves: ${[...moves].join(', ')}`);
  return {
    planner,
    replicas,
    clients,
    planned_client_entries: timings[0]!.clients,
    moves: timings[0]!.moves,
    reps,
    total_ms: { median: round(median), p95: round(quantile(timings.map((t) => t.total), 0.95)) },
    phases_ms: phases,
  };
}

function markdown(results: PointResult[], reps: number): string {
  const lines = [
    '# Plan: one minimum-dispersion analysis of a large group',
    '',
    `In-process (no sockets): Analyzer.analyze of one group, state built through Registry.attach and two Group.applyReport per replica; ` +
      `${SETS_SHARE * 100} % of clients understand sets (${SPREAD_SHARE * 100} % of those spread over 2..4 members), ${HELD_SHARE * 100} % held, ` +
      `${HOT_SHARE * 100} % of replicas hot (3x clients), ${NEW_SHARE * 100} % new (0.1x), log-normal client loads (sigma 0.8, ${HEAVY_SHARE * 100} % heavy x20) scaled to ${MEAN_REPLICA_CALLS_PER_S} calls/s per replica on average; ` +
      `default strategy parameters (maxMoves 32, maxBindingSize 4). ${reps} repetitions per point, state rebuilt and GC run before each. Machine: ${JSON.stringify(machine())}.`,
    '',
    '| planner | replicas | clients | entries planned | moves | total median ms | total p95 ms | ' + PHASES.map((p) => `${p} ms (share)`).join(' | ') + ' |',
    '|---|---:|---:|---:|---:|---:|---:|' + PHASES.map(() => '---:').join('|') + '|',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.planner} | ${r.replicas} | ${r.clients} | ${r.planned_client_entries} | ${r.moves} | ${r.total_ms.median} | ${r.total_ms.p95} | ` +
        PHASES.map((p) => `${r.phases_ms[p].median} (${Math.round(r.phases_ms[p].share * 100)} %)`).join(' | ') +
        ' |',
    );
  }
  return lines.join('\n') + '\n';
}

async function main(opts: { reps: string; quick?: boolean; out?: string; points?: string; compare?: boolean; baseline?: string; clock: string }): Promise<void> {
  if (opts.clock !== 'wall' && opts.clock !== 'cpu') throw new Error(`--clock must be wall or cpu (got ${opts.clock})`);
  if (opts.clock === 'cpu') clock = cpuMs;
  const reps = opts.quick ? 3 : Number(opts.reps);
  if (!Number.isInteger(reps) || reps < 1) throw new Error(`--reps must be a positive integer (got ${opts.reps})`);
  const results: PointResult[] = [];
  const chosen = opts.points === undefined ? POINTS : POINTS.filter((p) => opts.points!.split(',').includes(`${p.replicas}x${p.clients}`));
  if (chosen.length === 0) throw new Error(`--points names none of ${POINTS.map((p) => `${p.replicas}x${p.clients}`).join(',')}`);
  const baseline = opts.baseline === undefined ? null : loadCore(opts.baseline);
  const planners: Planner[] = ['current', ...(opts.compare ? (['reference'] as const) : []), ...(baseline !== null ? (['baseline'] as const) : [])];
  for (const p of chosen) {
    const point = runPoint(p.replicas, p.clients, reps, opts.quick ? 1 : 3, planners, baseline);
    for (const r of point) {
      say(`${r.planner}: ${p.replicas} replicas, ${p.clients} clients: median ${r.total_ms.median} ms, p95 ${r.total_ms.p95} ms (${PHASES.map((ph) => `${ph} ${r.phases_ms[ph].median}`).join(', ')}), ${r.moves} moves`);
      results.push(r);
    }
    const base = point.find((r) => r.planner === 'baseline');
    if (base !== undefined) say(`  current / baseline: total ${(point[0]!.total_ms.median / base.total_ms.median).toFixed(2)}x (${PHASES.map((ph) => `${ph} ${point[0]!.phases_ms[ph].median} vs ${base.phases_ms[ph].median}`).join(', ')})`);
  }
  const dir = opts.out ?? (opts.quick ? null : RESULTS_DIR);
  if (dir === null) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'plan.json'), JSON.stringify({ machine: machine(), reps, results }, null, 2) + '\n');
  writeFileSync(path.join(dir, 'plan.md'), markdown(results, reps));
  say(`wrote ${path.join(dir, 'plan.json')} and plan.md`);
}

if (require.main === module) {
  new Command('plan')
    .option('--reps <n>', 'timed repetitions per point', '21')
    .option('--quick', 'three repetitions, no results written (unless --out)')
    .option('--out <dir>', 'where to write plan.{json,md}')
    .option('--compare', 'also time the pre-optimisation planner (test/support/minimum-dispersion-reference.ts), interleaved')
    .option('--baseline <dir>', 'also time the whole analysis with the balancer code of this src directory (an older src/ inside the repository), interleaved')
    .option('--clock <wall|cpu>', 'time with the wall clock, or with the process CPU time (user + system; leaves out a busy machine\'s scheduling)', 'wall')
    .option('--points <list>', 'comma-separated subset of the points, as REPLICASxCLIENTS (e.g. 10000x100000)')
    .action(async (opts: { reps: string; quick?: boolean; out?: string; points?: string; compare?: boolean; baseline?: string; clock: string }) => {
      try {
        await main(opts);
        process.exit(0);
      } catch (err) {
        console.error(`plan: ${(err as Error).stack}`);
        process.exit(1);
      }
    })
    .parse(process.argv);
}
