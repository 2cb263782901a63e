/**
 * Metrics scrape benchmark: the wall time of one render of the balancer's
 * /metrics exposition text (what the admin port's handler awaits, on the
 * event loop) and its size, at 1,000 and 10,000 members with 100,000
 * clients in the ledger, in one process without sockets.
 *
 * Members attach through the control handlers (as bench/hotpath.ts does)
 * and report once with 4 top clients each; the ledger is filled with binds
 * spread over the members. Process metrics (prom-client's defaults) are
 * left out: they cost the same whatever the fleet.
 *
 * `--compare <dir>`: a second copy of src/ (e.g. the base commit's, from
 * `git archive <rev> src | tar -x -C <dir>/..`): old and new alternate
 * round by round; the table shows medians of both and their ratio. Prints
 * the table (markdown); writes nothing unless `--out <file>`.
 */
import { Command } from 'commander';
import { EventEmitter } from 'node:events';
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { machine, say } from './lib/common';

const GROUP = 'scale';
const PATH = '/scale.Service/Call';
const REPORT_INTERVAL_MS = 1000;
const TOP_CLIENTS_PER_REPORT = 4;

interface Impl {
  label: string;
  controlHandlers: typeof import('../src/balancer/control-service').controlHandlers;
  Registry: typeof import('../src/balancer/registry').Registry;
  Analyzer: typeof import('../src/balancer/analyzer').Analyzer;
  parseBalancerConfig: typeof import('../src/balancer/config').parseBalancerConfig;
  DEFAULT_CONTROL_LIMITS: typeof import('../src/balancer/validate').DEFAULT_CONTROL_LIMITS;
  balancerMetrics: typeof import('../src/balancer/prometheus').balancerMetrics;
}

function loadImpl(label: string, srcDir: string): Impl {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const req = (p: string) => require(path.resolve(srcDir, p));
  return {
    label,
    controlHandlers: req('balancer/control-service').controlHandlers,
    Registry: req('balancer/registry').Registry,
    Analyzer: req('balancer/analyzer').Analyzer,
    parseBalancerConfig: req('balancer/config').parseBalancerConfig,
    DEFAULT_CONTROL_LIMITS: req('balancer/validate').DEFAULT_CONTROL_LIMITS,
    balancerMetrics: req('balancer/prometheus').balancerMetrics,
  };
}

const silent = pino({ level: 'silent' });

/** Stands in for a grpc-js server duplex stream: what AttachSession uses. */
class FakeCall extends EventEmitter {
  writableLength = 0;
  constructor(private readonly peer: string) {
    super();
  }
  getPeer(): string {
    return this.peer;
  }
  getAuthContext(): object {
    return {};
  }
  write(): boolean {
    return true;
  }
  end(): void {}
}

function report(index: number) {
  const base = 80 + (index % 3);
  const topClients = [];
  for (let k = 0; k < TOP_CLIENTS_PER_REPORT; k++) topClients.push({ clientId: `sim-${index}-${k}-client`, callsPerS: base / 4, sets: false });
  return {
    body: 'report' as const,
    report: { seq: 1, intervalMs: REPORT_INTERVAL_MS, callsPerS: base, inFlight: 1, latencyMs: 1, eventLoopUtilization: 0.2, cpuCores: 0.2, custom: 0, hasCustom: false, topClients, otherCallsPerS: 0, forwards: 0, draining: false, clientCount: TOP_CLIENTS_PER_REPORT },
  };
}

/** One balancer's registry with `members` attached and reported, `clients` bound, and its metrics registry. */
function build(impl: Impl, members: number, clients: number, maxMemberSeries: number | undefined, processMetrics: boolean) {
  let now = 1_000_000;
  const parsed = impl.parseBalancerConfig({
    listen: '127.0.0.1:0',
    controlListen: '127.0.0.1:0',
    groups: [{ name: GROUP, granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: REPORT_INTERVAL_MS, maxMembers: 100_000 }],
  });
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const registry = new impl.Registry(parsed.value, silent);
  const scheduler = { now: () => now, schedule: () => { throw new Error('no timers here'); } };
  const analyzer = new impl.Analyzer(registry, scheduler as never, silent);
  const handlers = impl.controlHandlers({ registry, analyzer, scheduler: scheduler as never, log: silent, warn: { warn: () => undefined } as never, limits: impl.DEFAULT_CONTROL_LIMITS });
  const calls: FakeCall[] = [];
  for (let i = 0; i < members; i++) {
    const call = new FakeCall(`ipv4:10.1.${(i >> 8) & 255}.${i & 255}:${40000 + (i % 20000)}`);
    (handlers.Attach as (c: unknown) => void)(call);
    call.emit('data', { body: 'hello', hello: { protocolVersion: 1, group: GROUP, address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7000`, methods: [{ path: PATH, kind: 'UNARY' }], replicaId: `sim-${i}`, resumeSecret: '' } });
    calls.push(call);
  }
  now += REPORT_INTERVAL_MS;
  calls.forEach((call, i) => call.emit('data', report(i)));
  const group = registry.groups.get(GROUP)!;
  const ids = [...group.members.keys()];
  for (let c = 0; c < clients; c++) {
    now += 0.01;
    group.ledger.bound(`bench-${c}-client`, ids[c % ids.length]!, now);
  }
  const metrics = impl.balancerMetrics({ registry, refusals: new Map() }, { processMetrics, ...(maxMemberSeries !== undefined ? { maxMemberSeries } : {}) } as never);
  return { registry, metrics, keep: calls };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const opts = new Command()
    .option('--compare <dir>', 'a second copy of src/ to measure against (labelled "old")')
    .option('--members <list>', 'member counts', '1000,10000')
    .option('--clients <n>', 'clients in the ledger', '100000')
    .option('--rounds <n>', 'scrapes per copy and member count (medians reported)', '9')
    .option('--max-member-series <n>', "the new code's limits.maxMemberSeries (default: its default; the old code has none)")
    .option('--process-metrics', "with prom-client's process metrics (the same cost whatever the fleet)")
    .option('--out <file>', 'write the markdown table there')
    .parse()
    .opts<{ compare?: string; members: string; clients: string; rounds: string; out?: string; maxMemberSeries?: string; processMetrics?: boolean }>();
  const impls: Impl[] = [];
  if (opts.compare !== undefined) impls.push(loadImpl('old', opts.compare));
  impls.push(loadImpl('new', path.join(__dirname, '..', 'src')));
  const clients = Number(opts.clients);
  const rounds = Number(opts.rounds);
  const rows: { members: number; ms: Record<string, number>; bytes: Record<string, number>; lines: Record<string, number> }[] = [];
  for (const members of opts.members.split(',').map(Number)) {
    const built = impls.map((impl) => build(impl, members, clients, opts.maxMemberSeries === undefined ? undefined : Number(opts.maxMemberSeries), opts.processMetrics === true));
    const samples = impls.map(() => [] as number[]);
    const bytes: Record<string, number> = {};
    const lines: Record<string, number> = {};
    for (const b of built) await b.metrics.metrics(); // warm-up: JIT
    for (let r = 0; r < rounds; r++) {
      // Alternating which copy goes first, so that a drift of the machine's load falls on both.
      const order = r % 2 === 0 ? impls.map((_, k) => k) : impls.map((_, k) => impls.length - 1 - k);
      for (const k of order) {
        const start = performance.now();
        const text = await built[k]!.metrics.metrics();
        samples[k]!.push(performance.now() - start);
        bytes[impls[k]!.label] = Buffer.byteLength(text);
        lines[impls[k]!.label] = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      }
    }
    const ms = Object.fromEntries(impls.map((impl, k) => [impl.label, round1(median(samples[k]!))]));
    say(`scrape, ${members} members, ${clients} clients: ${JSON.stringify(ms)} ms, bytes ${JSON.stringify(bytes)}, series ${JSON.stringify(lines)}`);
    rows.push({ members, ms, bytes, lines });
  }
  const labels = impls.map((i) => i.label);
  const ratio = (r: Record<string, number>) => (r['old'] !== undefined && r['new'] !== undefined ? ` ${Math.round((r['new'] / r['old']) * 1000) / 1000} |` : '');
  const md = [
    `\`npx tsx bench/metrics.ts${opts.compare !== undefined ? ' --compare <old src>' : ''}${opts.maxMemberSeries !== undefined ? ` --max-member-series ${opts.maxMemberSeries}` : ''}${opts.processMetrics === true ? ' --process-metrics' : ''}\` — one render of /metrics (process metrics ${opts.processMetrics === true ? 'on' : 'off'}${opts.maxMemberSeries !== undefined ? `, new code's maxMemberSeries ${opts.maxMemberSeries}` : ''}), ${clients} clients in the ledger; medians of ${rounds} scrapes${labels.length > 1 ? ', old and new alternating' : ''}. ${machine().cpus} cores.`,
    '',
    `| members | ${labels.map((l) => `${l} ms`).join(' | ')}${labels.length > 1 ? ' | new/old' : ''} | ${labels.map((l) => `${l} bytes`).join(' | ')} | ${labels.map((l) => `${l} series`).join(' | ')} |`,
    `| ---: | ${labels.map(() => '---:').join(' | ')}${labels.length > 1 ? ' | ---:' : ''} | ${labels.map(() => '---:').join(' | ')} | ${labels.map(() => '---:').join(' | ')} |`,
    ...rows.map((r) => `| ${r.members} | ${labels.map((l) => r.ms[l]).join(' | ')} |${ratio(r.ms)} ${labels.map((l) => r.bytes[l]).join(' | ')} | ${labels.map((l) => r.lines[l]).join(' | ')} |`),
    '',
  ].join('\n');
  say(md);
  if (opts.out !== undefined) writeFileSync(opts.out, md);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
