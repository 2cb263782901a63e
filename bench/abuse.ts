/**
 * Abuse benchmark (issue 11): a balancer and two replicas serve a few
 * legitimate clients at a steady rate while one attack vector at a time runs
 * for a fixed time as fast as the machine allows. For each vector it records
 * what the attacker sent, the heap and RSS growth of the balancer and of the
 * replicas (peak during the vector minus the baseline before it, and after
 * the vector stopped plus a settle time, after a forced GC), their CPU, the
 * refusal counters that show a defence acted, and the legitimate clients'
 * calls and failures; then judges it:
 *   heap growth during the vector < HEAP_PEAK_LIMIT_MB (balancer, replicas)
 *   heap back within HEAP_AFTER_LIMIT_MB of the start after it (after GC)
 *   no legitimate call failed
 * Every vector runs against fresh processes, so that one vector's leftovers
 * (or a wedged process) do not count against the next.
 * Writes bench/results/abuse.{json,md,svg}.
 */
import { Command } from 'commander';
import { renderSvg } from './lib/charts';
import { machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { runBenchCommand, Worker, type WorkerMessage } from './lib/processes';

export const VECTORS = ['orca_streams', 'sse_viewers', 'refused_hellos', 'fresh_client_binds', 'hello_paths', 'control_notices', 'data_streams', 'proxy_stall'] as const;
/**
 * A control run, only when asked for (--vectors idle): the attacker does
 * nothing, so that what the bench's own processes and legitimate traffic do
 * on this machine can be told from what an attack does.
 */
const CONTROL = 'idle';
type Vector = (typeof VECTORS)[number] | typeof CONTROL;

/** Acceptance: heap growth while the vector runs (peak minus baseline), MB. */
export const HEAP_PEAK_LIMIT_MB = 50;
/** Acceptance: heap after the vector stopped, a settle time and a forced GC, minus the baseline, MB. */
export const HEAP_AFTER_LIMIT_MB = 20;
/** Calls/s of each legitimate caller (2 rebind clients, a plain unary client, a plain streaming client). */
const LEGIT_RATE_PER_S = 10;
/** Interval between memory samples, ms. */
const SAMPLE_INTERVAL_MS = 250;
/** Interval between live-heap samples (a forced GC in each process, then its heap), ms. */
const LIVE_SAMPLE_INTERVAL_MS = 1000;
/** A worker that does not answer a request within this time is taken as wedged, ms. */
const REQUEST_TIMEOUT_MS = 30_000;

const DESCRIPTIONS: Record<Vector, string> = {
  idle: 'control run: the attacker does nothing',
  orca_streams: 'ORCA StreamCoreMetrics streams to a replica (100 ms reports), never read (HTTP/2 window 0, paused)',
  sse_viewers: 'admin /api/events viewers that never read (raw sockets) while the strategy of group "echo" flips as fast as the admin port answers',
  refused_hellos: 'control attachments whose Hello names a fresh group and a path group "echo" owns (refused)',
  fresh_client_binds: 'rebind-aware binds to the data port, a fresh client id and a ~1 KB user-agent each; forwards never followed',
  hello_paths: 'attach + detach in a loop, each Hello listing 600 fresh method paths of ~400 characters (about 240 KB, under the default limits.maxControlMessageBytes) in a fresh group',
  control_notices: 'one attachment flooding NaN load reports, never reading the balancer\'s notices',
  data_streams: 'idle HTTP/2 connections and connections holding 100 unfinished calls each, to the data port',
  proxy_stall: 'plain clients of the per-request group asking for 100,000 replies of 32 KB, never reading (window 0)',
};

type Proc = 'balancer' | 'replica' | 'replica2';
const PROCS: Proc[] = ['balancer', 'replica', 'replica2'];

/** The refusal counters (rebind_refused_inputs_total{reason} or Replica.refusals) that show each vector's defence acted. */
const DEFENCES: Record<Vector, { proc: Proc; reason: string }[]> = {
  idle: [],
  orca_streams: [
    { proc: 'replica', reason: 'orca_streams' },
    { proc: 'replica', reason: 'orca_stream_blocked' },
    { proc: 'replica', reason: 'orca_connection_abusive' },
  ],
  sse_viewers: [
    { proc: 'balancer', reason: 'admin_http_viewers' },
    { proc: 'balancer', reason: 'admin_http_slow_viewer' },
  ],
  refused_hellos: [
    { proc: 'balancer', reason: 'attach_refused' },
    { proc: 'balancer', reason: 'auto_group_limit' },
  ],
  fresh_client_binds: [{ proc: 'balancer', reason: 'pending_bind_credit_capped' }],
  hello_paths: [{ proc: 'balancer', reason: 'auto_group_limit' }],
  control_notices: [
    { proc: 'balancer', reason: 'bad_report' },
    { proc: 'balancer', reason: 'notice_dropped' },
    { proc: 'balancer', reason: 'control_flood' },
  ],
  data_streams: [
    { proc: 'balancer', reason: 'data_connection_limit' },
    { proc: 'balancer', reason: 'data_idle_timeout' },
    { proc: 'balancer', reason: 'proxy_caller_limit' },
  ],
  proxy_stall: [
    { proc: 'balancer', reason: 'proxy_replica_limit' },
    { proc: 'balancer', reason: 'proxy_caller_limit' },
    { proc: 'balancer', reason: 'data_connection_abusive' },
  ],
};

interface Stats {
  /** heapUsed + external (V8 heap and the Buffers it holds), MB. */
  heapMb: number;
  rssMb: number;
  cpuUs: number;
  refusals: Record<string, number>;
}

/** Memory of one process under one vector; "heap" is heapUsed + external (Buffers count), MB. */
interface ProcMeasure {
  heap_start_mb: number;
  /**
   * Highest live heap while the vector ran, minus the baseline: sampled
   * right after a forced GC once a second (LIVE_SAMPLE_INTERVAL_MS), so it is
   * what the process holds, not garbage V8 has not collected yet. The
   * acceptance is judged on it.
   */
  heap_live_peak_growth_mb: number;
  /** Highest heap sampled without a GC (every SAMPLE_INTERVAL_MS): includes garbage not yet collected. */
  heap_peak_growth_mb: number;
  heap_after_growth_mb: number;
  rss_start_mb: number;
  rss_peak_growth_mb: number;
  rss_after_growth_mb: number;
  /** CPU while the vector ran, % of one core. */
  cpu_pct: number;
}

interface VectorResult {
  description: string;
  duration_ms: number;
  settle_ms: number;
  attacker: { sent: number; sent_per_s: number; notes: string; errors: string[] };
  balancer: ProcMeasure;
  replica: ProcMeasure;
  replica2: ProcMeasure;
  /** Deltas of this vector's defence counters, "process.reason". */
  defence: Record<string, number>;
  defence_acted: boolean;
  /** Every refusal counter that moved, per process. */
  refusals: Record<Proc, Record<string, number>>;
  legit: { calls: number; failures: number; p99_ms: number | null; by_kind: Record<string, { calls: number; failures: number }>; errors: string[] };
  acceptance: { pass: boolean; reason: string };
  /** [seconds since the vector started, heap MB of balancer, replica, replica2]. */
  timeline: number[][];
  error?: string;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
const round1 = (x: number) => Math.round(x * 10) / 10;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ask(worker: Worker, message: WorkerMessage): Promise<WorkerMessage> {
  let timer: NodeJS.Timeout | undefined;
  const reply = await Promise.race([
    worker.request(message),
    new Promise<WorkerMessage>((resolve) => (timer = setTimeout(() => resolve({ type: 'error', error: `no answer to ${message.type} within ${REQUEST_TIMEOUT_MS} ms` }), REQUEST_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  if (reply.type === 'error') throw new Error(`${worker.name}: ${String(reply['error'])}`);
  return reply;
}

async function stats(worker: Worker): Promise<Stats> {
  const r = await ask(worker, { type: 'stats' });
  const memory = r['memory'] as NodeJS.MemoryUsage;
  const cpu = r['cpu'] as NodeJS.CpuUsage;
  // Buffers (socket and HTTP/2 write queues, DATA chunks) live outside V8's heap: count them with it.
  return { heapMb: mb(memory.heapUsed + memory.external), rssMb: mb(memory.rss), cpuUs: cpu.user + cpu.system, refusals: (r['refusals'] as Record<string, number>) ?? {} };
}

interface Timing {
  warmupMs: number;
  durationMs: number;
  settleMs: number;
  scale: number;
}

async function runVector(vector: Vector, timing: Timing): Promise<VectorResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const { worker: balancer, ready: b } = await Worker.start('balancer', 'abuse-balancer.js', [], {}, ['--expose-gc']);
    stops.push(() => balancer.stop());
    const start = async (name: string, script: string, args: string[], execArgv: string[]) => {
      const started = await Worker.start(name, script, args, {}, execArgv);
      stops.push(() => started.worker.stop());
      return started;
    };
    const replicaArgs = (name: string) => ['--name', name, '--balancer', String(b['control'])];
    const [r1, r2, { worker: attacker }] = await Promise.all([
      start('r1', 'abuse-replica.js', replicaArgs('r1'), ['--expose-gc']),
      start('r2', 'abuse-replica.js', replicaArgs('r2'), ['--expose-gc']),
      start('attacker', 'abuse-attacker.js', [], []),
    ]);
    const { worker: clients } = await Worker.start('clients', 'abuse-clients.js', ['--target', String(b['data']), '--rate', String(LEGIT_RATE_PER_S)]);
    stops.push(() => clients.stop());
    const workers: Record<Proc, Worker> = { balancer, replica: r1.worker, replica2: r2.worker };
    const all = async <T>(f: (w: Worker) => Promise<T>) => Object.fromEntries(await Promise.all(PROCS.map(async (p) => [p, await f(workers[p])] as const))) as Record<Proc, T>;
    await sleep(timing.warmupMs);
    // Forget the warm-up (binding, first reports); the window measured starts here.
    await ask(clients, { type: 'window' });
    await all((w) => ask(w, { type: 'gc' }));
    const baseline = await all(stats);
    const t0 = Date.now();
    const timeline: number[][] = [[0, ...PROCS.map((p) => baseline[p].heapMb)]];
    const peak = Object.fromEntries(PROCS.map((p) => [p, { heap: baseline[p].heapMb, live: baseline[p].heapMb, rss: baseline[p].rssMb }])) as Record<Proc, { heap: number; live: number; rss: number }>;
    let running = true;
    let during = true;
    let lastLiveMs = Date.now();
    const sampler = (async () => {
      while (running) {
        await sleep(SAMPLE_INTERVAL_MS);
        const live = during && Date.now() - lastLiveMs >= LIVE_SAMPLE_INTERVAL_MS;
        if (live) {
          lastLiveMs = Date.now();
          await all((w) => ask(w, { type: 'gc' })).catch(() => null);
        }
        const s = await all(stats).catch(() => null);
        if (s === null) continue;
        timeline.push([round1((Date.now() - t0) / 1000), ...PROCS.map((p) => s[p].heapMb)]);
        if (!during) continue;
        for (const p of PROCS) {
          if (live) peak[p].live = Math.max(peak[p].live, s[p].heapMb);
          peak[p].heap = Math.max(peak[p].heap, s[p].heapMb);
          peak[p].rss = Math.max(peak[p].rss, s[p].rssMb);
        }
      }
    })();
    const targets = { data: b['data'], control: b['control'], admin: b['admin'], replica: r1.ready['echo'] };
    const outcome = await ask(attacker, { type: 'run', vector, durationMs: timing.durationMs, targets, scale: timing.scale });
    const elapsedMs = Date.now() - t0;
    const end = await all(stats);
    during = false;
    for (const p of PROCS) {
      peak[p].heap = Math.max(peak[p].heap, end[p].heapMb);
      peak[p].rss = Math.max(peak[p].rss, end[p].rssMb);
    }
    await sleep(timing.settleMs);
    running = false;
    await sampler;
    await all((w) => ask(w, { type: 'gc' }));
    const after = await all(stats);
    timeline.push([round1((Date.now() - t0) / 1000), ...PROCS.map((p) => after[p].heapMb)]);
    const legit = await ask(clients, { type: 'window' });

    const measure = (p: Proc): ProcMeasure => ({
      heap_start_mb: baseline[p].heapMb,
      heap_live_peak_growth_mb: round1(peak[p].live - baseline[p].heapMb),
      heap_peak_growth_mb: round1(peak[p].heap - baseline[p].heapMb),
      heap_after_growth_mb: round1(after[p].heapMb - baseline[p].heapMb),
      rss_start_mb: baseline[p].rssMb,
      rss_peak_growth_mb: round1(peak[p].rss - baseline[p].rssMb),
      rss_after_growth_mb: round1(after[p].rssMb - baseline[p].rssMb),
      cpu_pct: round1(((end[p].cpuUs - baseline[p].cpuUs) / 1000 / elapsedMs) * 100),
    });
    const refusals = Object.fromEntries(
      PROCS.map((p) => {
        const moved: Record<string, number> = {};
        for (const [reason, n] of Object.entries(after[p].refusals)) {
          const delta = n - (baseline[p].refusals[reason] ?? 0);
          if (delta !== 0) moved[reason] = delta;
        }
        return [p, moved];
      }),
    ) as Record<Proc, Record<string, number>>;
    const defence: Record<string, number> = {};
    for (const d of DEFENCES[vector]) defence[`${d.proc}.${d.reason}`] = refusals[d.proc][d.reason] ?? 0;
    const sent = Number(outcome['sent']);
    const result: Omit<VectorResult, 'acceptance'> = {
      description: DESCRIPTIONS[vector],
      duration_ms: elapsedMs,
      settle_ms: timing.settleMs,
      attacker: { sent, sent_per_s: Math.round(sent / (elapsedMs / 1000)), notes: String(outcome['notes']), errors: (outcome['errors'] as string[]) ?? [] },
      balancer: measure('balancer'),
      replica: measure('replica'),
      replica2: measure('replica2'),
      defence,
      defence_acted: Object.values(defence).some((n) => n > 0),
      refusals,
      legit: {
        calls: Number(legit['calls']),
        failures: Number(legit['failures']),
        p99_ms: legit['p99_ms'] === undefined ? null : Number(legit['p99_ms']),
        by_kind: legit['byKind'] as Record<string, { calls: number; failures: number }>,
        errors: (legit['errors'] as string[]) ?? [],
      },
      timeline,
    };
    return { ...result, acceptance: judge(result) };
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  }
}

/** The acceptance rules of issue 11, with the reason. */
function judge(r: Omit<VectorResult, 'acceptance'>): VectorResult['acceptance'] {
  const failures: string[] = [];
  for (const p of PROCS) {
    const m = r[p];
    if (m.heap_live_peak_growth_mb >= HEAP_PEAK_LIMIT_MB) failures.push(`${p} live heap grew ${m.heap_live_peak_growth_mb} MB during the vector (limit ${HEAP_PEAK_LIMIT_MB})`);
    if (m.heap_after_growth_mb >= HEAP_AFTER_LIMIT_MB) failures.push(`${p} heap still ${m.heap_after_growth_mb} MB above the start after the vector and GC (limit ${HEAP_AFTER_LIMIT_MB})`);
  }
  if (r.legit.calls === 0) failures.push('the legitimate clients completed no call');
  if (r.legit.failures > 0) failures.push(`${r.legit.failures} of ${r.legit.calls} legitimate calls failed`);
  if (failures.length > 0) return { pass: false, reason: failures.join('; ') };
  return { pass: true, reason: `heap growth < ${HEAP_PEAK_LIMIT_MB} MB and back within ${HEAP_AFTER_LIMIT_MB} MB, ${r.legit.calls} legitimate calls, none failed` };
}

/** A vector that could not be measured (a process died or wedged): a failure, with what happened. */
function broken(vector: Vector, timing: Timing, err: Error): VectorResult {
  const none: ProcMeasure = { heap_start_mb: 0, heap_live_peak_growth_mb: 0, heap_peak_growth_mb: 0, heap_after_growth_mb: 0, rss_start_mb: 0, rss_peak_growth_mb: 0, rss_after_growth_mb: 0, cpu_pct: 0 };
  return {
    description: DESCRIPTIONS[vector],
    duration_ms: timing.durationMs,
    settle_ms: timing.settleMs,
    attacker: { sent: 0, sent_per_s: 0, notes: '', errors: [] },
    balancer: none,
    replica: none,
    replica2: none,
    defence: Object.fromEntries(DEFENCES[vector].map((d) => [`${d.proc}.${d.reason}`, 0])),
    defence_acted: false,
    refusals: { balancer: {}, replica: {}, replica2: {} },
    legit: { calls: 0, failures: 0, p99_ms: null, by_kind: {}, errors: [] },
    acceptance: { pass: false, reason: `not measured: ${err.message}` },
    timeline: [],
    error: err.message,
  };
}

async function chart(results: Record<string, VectorResult>): Promise<string> {
  const values = Object.entries(results).flatMap(([vector, r]) => r.timeline.flatMap(([t, ...heaps]) => PROCS.map((p, i) => ({ vector, t, process: p, heap: heaps[i] }))));
  const ends = Object.entries(results).map(([vector, r]) => ({ vector, t: round1(r.duration_ms / 1000) }));
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind under abuse: heap used (MB) per process; the vector runs from 0 to the dashed line, then settle and GC',
    facet: { row: { field: 'vector', type: 'nominal', title: null, sort: Object.keys(results) } },
    data: { values: [...values, ...ends.map((e) => ({ ...e, end: true }))] },
    spec: {
      width: 560,
      height: 90,
      layer: [
        {
          transform: [{ filter: 'datum.end !== true' }],
          mark: { type: 'line', strokeWidth: 1.2, point: { size: 8 } },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 'seconds since the vector started' },
            y: { field: 'heap', type: 'quantitative', title: 'heap MB' },
            color: { field: 'process', type: 'nominal', scale: { domain: PROCS, range: ['#e45756', '#4c78a8', '#72b7b2'] } },
          },
        },
        { transform: [{ filter: 'datum.end === true' }], mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { field: 't', type: 'quantitative' } } },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  });
}

function markdown(json: { vectors: Record<string, VectorResult>; summary: { passed: number; failed: number }; timing: Timing }, command: string): string {
  const cell = (m: ProcMeasure) => `${m.heap_live_peak_growth_mb} (${m.heap_peak_growth_mb}) / ${m.heap_after_growth_mb}`;
  const rss = (m: ProcMeasure) => `${m.rss_peak_growth_mb} / ${m.rss_after_growth_mb}`;
  const lines = [
    '# Abuse',
    '',
    `\`${command}\` — a balancer (autoCreateGroups, no control token) and two replicas on loopback serve 4 legitimate callers at ${LEGIT_RATE_PER_S} calls/s each (2 rebind clients, a plain unary client, a plain streaming client of a per-request group) while one attack vector at a time runs for ${timing(json.timing)}. Fresh processes for every vector.`,
    '',
    `Acceptance per vector: live heap growth during the vector < ${HEAP_PEAK_LIMIT_MB} MB and back within ${HEAP_AFTER_LIMIT_MB} MB after it (after ${json.timing.settleMs / 1000} s and a forced GC) for the balancer and both replicas, and no legitimate call failed. **${json.summary.passed} passed, ${json.summary.failed} failed.**`,
    '',
    '| vector | attacker sent | balancer heap MB live peak (raw peak) / after | replica heap MB live peak (raw peak) / after | balancer RSS MB peak / after | replica RSS MB peak / after | CPU % balancer / replica | defence counters | legit calls / failed | verdict |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- |',
  ];
  for (const [key, r] of Object.entries(json.vectors)) {
    const worst = r.replica2.heap_live_peak_growth_mb > r.replica.heap_live_peak_growth_mb ? r.replica2 : r.replica;
    const defence = Object.entries(r.defence).map(([k, n]) => `${k.replace(/^balancer\./, '')} ${n}`).join(', ');
    lines.push(
      `| ${key} | ${r.attacker.sent} | ${cell(r.balancer)} | ${cell(worst)} | ${rss(r.balancer)} | ${rss(worst)} | ${r.balancer.cpu_pct} / ${worst.cpu_pct} | ${defence} | ${r.legit.calls} / ${r.legit.failures} | ${r.acceptance.pass ? 'pass' : `**fail**: ${r.acceptance.reason}`} |`,
    );
  }
  lines.push(
    '',
    '"Heap" is `heapUsed + external` of process.memoryUsage(): the V8 heap and the Buffers it holds (socket and HTTP/2 write queues are Buffers). Growth is in MB against a baseline taken after a forced GC just before the vector: "live peak" is the highest heap measured right after a forced GC, once a second while it ran (what the process holds; the acceptance is judged on it), "raw peak" in brackets the highest heap sampled every 250 ms without a GC (garbage not yet collected included: V8 lets it pile up to its next collection), RSS peak likewise without a GC, "after" the value once the attacker closed everything, the settle time passed and a GC ran. The replica columns show the replica that grew most (the attacked one is `replica` in the JSON). CPU is % of one core while the vector ran. Defence counters are deltas of `rebind_refused_inputs_total{reason}` (balancer) or `Replica.refusals` (replica.*); a counter that does not exist reads 0. Legitimate calls are those completed from the baseline to the end of the settle time (deadline 5 s).',
    '',
    ...Object.entries(json.vectors).map(([k, r]) => `- \`${k}\`: ${r.description}. Attacker: ${r.attacker.notes || r.error || ''}${r.legit.errors.length > 0 ? `. Legitimate errors: ${r.legit.errors.slice(0, 3).join(' | ')}` : ''}`),
  );
  return lines.join('\n');
}

function timing(t: Timing): string {
  return `${t.durationMs / 1000} s, then ${t.settleMs / 1000} s to settle`;
}

async function main(opts: { quick?: boolean; out: string; vectors?: string; duration?: number; settle?: number }): Promise<void> {
  const wanted = (opts.vectors?.split(',') ?? [...VECTORS]) as Vector[];
  const unknown = wanted.filter((w) => w !== CONTROL && !VECTORS.includes(w));
  if (unknown.length > 0) throw new Error(`unknown vector(s) ${unknown.join(', ')}; accepted: ${VECTORS.join(', ')} (and ${CONTROL}, a control run)`);
  const t: Timing = opts.quick ? { warmupMs: 1500, durationMs: 3000, settleMs: 1500, scale: 0.5 } : { warmupMs: 3000, durationMs: 20_000, settleMs: 5000, scale: 1 };
  if (opts.duration !== undefined) t.durationMs = opts.duration * 1000;
  if (opts.settle !== undefined) t.settleMs = opts.settle * 1000;
  const vectors: Record<string, VectorResult> = {};
  const progress = new Progress('abuse', wanted.length);
  for (const vector of wanted) {
    say(`vector ${vector}`);
    try {
      vectors[vector] = await runVector(vector, t);
    } catch (err) {
      vectors[vector] = broken(vector, t, err as Error);
    }
    const r = vectors[vector]!;
    progress.tick(`${vector} done`);
    say(
      `  sent ${r.attacker.sent}; live heap growth balancer ${r.balancer.heap_live_peak_growth_mb}/${r.balancer.heap_after_growth_mb} MB, replica ${r.replica.heap_live_peak_growth_mb}/${r.replica.heap_after_growth_mb} MB; legit ${r.legit.calls} calls, ${r.legit.failures} failed; ${r.acceptance.pass ? 'pass' : `FAIL: ${r.acceptance.reason}`}`,
    );
  }
  progress.stop();
  const results = Object.values(vectors);
  const summary = {
    passed: results.filter((r) => r.acceptance.pass).length,
    failed: results.filter((r) => !r.acceptance.pass).length,
    verdicts: Object.fromEntries(Object.entries(vectors).map(([k, r]) => [k, r.acceptance.pass ? 'pass' : `fail: ${r.acceptance.reason}`])),
  };
  const json = {
    machine: machine(),
    timing: t,
    memory: 'heap = process.memoryUsage().heapUsed + external (MB); rss = process.memoryUsage().rss (MB); growth against a baseline taken after a forced GC before each vector',
    acceptance: { heap_peak_limit_mb: HEAP_PEAK_LIMIT_MB, heap_after_limit_mb: HEAP_AFTER_LIMIT_MB, legit_failures: 0 },
    legit_rate_per_s: LEGIT_RATE_PER_S,
    summary,
    vectors,
  };
  const command = `npm run bench:abuse${opts.quick ? ' -- --quick' : ''}`;
  const md = markdown(json, command);
  const files = writeResults(opts.out, 'abuse', json, md, await chart(vectors));
  say(md);
  say(`wrote ${files.join(', ')}`);
}

const program = new Command('bench:abuse')
  .description('Memory, CPU and legitimate failures of the balancer and replicas under each attack vector of issue 11.')
  .option('--quick', 'short vectors (3 s, 1.5 s settle, half the held connections): the whole run in about 90 s')
  .option('--vectors <list>', `comma-separated subset of ${VECTORS.join(', ')}; "${CONTROL}" is a control run without attack`)
  .option('--duration <s>', 'seconds per vector (default 20; --quick 3)', (v) => Number(v))
  .option('--settle <s>', 'seconds after a vector before the "after" measurement (default 5; --quick 1.5)', (v) => Number(v))
  .option('--out <dir>', 'where to write abuse.{json,md,svg}', RESULTS_DIR);

if (require.main === module) runBenchCommand(program, main);
