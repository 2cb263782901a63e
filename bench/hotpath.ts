/**
 * Hot-path benchmark: the balancer's own cost per load report and per bind,
 * and its heap per attached replica and per bound client, measured in one
 * process without sockets (so that nothing else on the machine is counted).
 *
 *   (a) report: the control stream's handler (AttachSession.onMessage:
 *       flood window, validateReport, Group.applyReport, ledger) fed
 *       decoded LoadReports through a stand-in call object, plus the
 *       analyzer's liveness sweeps amortized per report, at 1k and 10k
 *       members each reporting once per (virtual) second with 4 top clients,
 *       as bench/workers/scale-replicas.ts does. gRPC's own per-message cost
 *       (HTTP/2 framing, protobuf decoding) is not in this figure; see
 *       "report over gRPC".
 *   (a') report over gRPC (not with --quick): the whole balancer
 *       (Balancer.start, analyzer running) in a fresh process per window
 *       (--grpc-rounds windows per copy, old and new alternating),
 *       replicas in a child process of it (one connection each,
 *       bench/workers/scale-replicas.ts); the balancer process's CPU over
 *       the window / reports received, and its heap and RSS growth per
 *       attached replica.
 *   (b) bind: DataPlane.onStream for a new rebind client (route, caller
 *       identity, Group.choose, ledger record, voucher, Trailers-Only
 *       response) on a stand-in HTTP/2 stream, at 1k members with 10k and
 *       100k clients already in the ledger.
 *   (c) memory: heap after a forced GC, per attached member (its session,
 *       member, a report with 4 top clients) and per bound client (ledger).
 *
 * `--compare <dir>`: a second copy of src/ (e.g. the base commit's, from
 * `git archive <rev> src | tar -x -C <dir>/..`): every measurement
 * alternates between the two copies round by round, and the tables show
 * medians of both and their ratio. Writes bench/results/hotpath.{json,md}.
 */
import { Command } from 'commander';
import { execFile, execFileSync, fork } from 'node:child_process';
import { promisify } from 'node:util';
import { EventEmitter } from 'node:events';
import * as inspector from 'node:inspector';
import * as path from 'node:path';
import pino from 'pino';
import { mkdirSync, writeFileSync } from 'node:fs';
import { machine, say } from './lib/common';
import { HpackDecoder } from '../src/h2/hpack';

const execFileAsync = promisify(execFile);
const REPORT_INTERVAL_MS = 1000;
const TOP_CLIENTS_PER_REPORT = 4;
const GROUP = 'scale';
const PATH = '/scale.Service/Call';
/** Binds per second of virtual time in the bind measurement: the p99 point (1,000 replicas). */
const BIND_RATE_PER_S = 10_000;

/** The modules of one copy of src/. */
interface Impl {
  label: string;
  controlHandlers: typeof import('../src/balancer/control-service').controlHandlers;
  Registry: typeof import('../src/balancer/registry').Registry;
  Analyzer: typeof import('../src/balancer/analyzer').Analyzer;
  DataPlane: typeof import('../src/balancer/data-plane').DataPlane;
  Voucher: typeof import('../src/balancer/vouch').Voucher;
  parseBalancerConfig: typeof import('../src/balancer/config').parseBalancerConfig;
  DEFAULT_CONTROL_LIMITS: typeof import('../src/balancer/validate').DEFAULT_CONTROL_LIMITS;
  clientUserAgent: typeof import('../src/common/wire').clientUserAgent;
  Balancer: typeof import('../src/balancer/balancer').Balancer;
}

function loadImpl(label: string, srcDir: string): Impl {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const req = (p: string) => require(path.resolve(srcDir, p));
  return {
    label,
    controlHandlers: req('balancer/control-service').controlHandlers,
    Registry: req('balancer/registry').Registry,
    Analyzer: req('balancer/analyzer').Analyzer,
    DataPlane: req('balancer/data-plane').DataPlane,
    Voucher: req('balancer/vouch').Voucher,
    parseBalancerConfig: req('balancer/config').parseBalancerConfig,
    DEFAULT_CONTROL_LIMITS: req('balancer/validate').DEFAULT_CONTROL_LIMITS,
    clientUserAgent: req('common/wire').clientUserAgent,
    Balancer: req('balancer/balancer').Balancer,
  };
}

const silent = pino({ level: 'silent' });

/** Virtual time, as the balancer's scheduler gives it: whole milliseconds (rxjs's asyncScheduler.now is Date.now). */
class Clock {
  t = 1_000_000;
  now = () => Math.floor(this.t);
}

/** Stands in for a grpc-js server duplex stream: what AttachSession uses. */
class FakeCall extends EventEmitter {
  writes = 0;
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
    this.writes++;
    return true;
  }
  end(): void {}
}

function replicaAddress(i: number): string {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:7000`;
}

function report(index: number, seq: number) {
  const base = 80 + (index % 3);
  const topClients = [];
  for (let k = 0; k < TOP_CLIENTS_PER_REPORT; k++) topClients.push({ clientId: `sim-${index}-${k}-client`, callsPerS: base / 4, sets: false });
  return {
    body: 'report' as const,
    report: {
      seq,
      intervalMs: REPORT_INTERVAL_MS,
      callsPerS: base,
      inFlight: 1,
      latencyMs: 1,
      eventLoopUtilization: 0.2,
      cpuCores: 0.2,
      custom: 0,
      hasCustom: false,
      topClients,
      otherCallsPerS: 0,
      forwards: 0,
      draining: false,
      clientCount: TOP_CLIENTS_PER_REPORT,
    },
  };
}

/** One balancer core (registry, control handlers, data plane) on virtual time, with `members` attached. */
class Core {
  readonly clock = new Clock();
  readonly registry: InstanceType<Impl['Registry']>;
  readonly analyzer: InstanceType<Impl['Analyzer']>;
  readonly dataPlane: InstanceType<Impl['DataPlane']>;
  readonly calls: FakeCall[] = [];
  private readonly attach: (call: FakeCall) => void;
  seq = 0;

  constructor(readonly impl: Impl) {
    const parsed = impl.parseBalancerConfig({
      listen: '127.0.0.1:0',
      controlListen: '127.0.0.1:0',
      groups: [{ name: GROUP, granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: REPORT_INTERVAL_MS, maxMembers: 100_000 }],
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
    this.registry = new impl.Registry(parsed.value, silent);
    const scheduler = { now: this.clock.now, schedule: () => { throw new Error('no timers here'); } };
    this.analyzer = new impl.Analyzer(this.registry, scheduler as never, silent);
    const handlers = impl.controlHandlers({
      registry: this.registry,
      analyzer: this.analyzer,
      scheduler: scheduler as never,
      log: silent,
      warn: { warn: () => undefined } as never,
      limits: impl.DEFAULT_CONTROL_LIMITS,
    });
    this.attach = (call) => (handlers.Attach as (c: unknown) => void)(call);
    const voucher = new impl.Voucher();
    this.dataPlane = new impl.DataPlane(this.registry, silent, voucher, {}, this.clock.now);
  }

  get group() {
    return this.registry.groups.get(GROUP)!;
  }

  attachMembers(n: number): void {
    const start = this.calls.length;
    for (let i = start; i < start + n; i++) {
      const call = new FakeCall(`ipv4:10.1.${(i >> 8) & 255}.${i & 255}:${40000 + (i % 20000)}`);
      this.attach(call);
      call.emit('data', { body: 'hello', hello: { protocolVersion: 1, group: GROUP, address: replicaAddress(i), methods: [{ path: PATH, kind: 'UNARY' }], replicaId: `sim-${i}`, resumeSecret: '' } });
      this.calls.push(call);
    }
    // Sessions whose hello timer would fire in this process: cleared by the hello above.
  }

  /**
   * One report interval: every member reports once, spread over `spreadMs`
   * of virtual time (the clock then moves on by as much). Returns the wall
   * time spent in the handler, ms.
   */
  reportRound(spreadMs = REPORT_INTERVAL_MS): number {
    const n = this.calls.length;
    this.seq++;
    const messages = this.calls.map((_, i) => report(i, this.seq));
    const t0 = this.clock.t;
    const step = spreadMs / n;
    const start = performance.now();
    for (let i = 0; i < n; i++) {
      this.clock.t = t0 + i * step;
      this.calls[i]!.emit('data', messages[i]);
    }
    // The analyzer's liveness sweeps (four per interval).
    for (let q = 0; q < 4; q++) this.analyzer.checkLiveness(this.group, t0 + (q * spreadMs) / 4);
    const spent = performance.now() - start;
    this.clock.t = t0 + spreadMs;
    return spent;
  }

  /** Binds one new rebind client through the data port's stream handler. */
  bind(clientId: string, caller: string): void {
    const headers = { ':method': 'POST', ':path': PATH, 'content-type': 'application/grpc', 'user-agent': `grpc-node-js/1.14.0 ${this.impl.clientUserAgent(clientId)}` };
    const stream = fakeStream(caller, headers);
    // The data port's handler: onStream(stream) on rebind's own HTTP/2 transport (src/h2), onStream(stream, headers) on node:http2 before it.
    (this.dataPlane as unknown as { onStream(s: unknown, h: unknown): void }).onStream(stream, headers);
    if (stream.status !== '200' || stream.forward === undefined) throw new Error(`bind of ${clientId} was not forwarded`);
  }
}

/** What a pre-encoded forward (an EncodedHeaders block) says, decoded once per block: the blocks are prepared per member and reused. */
const decodedBlocks = new WeakMap<Buffer, Record<string, string>>();
function decodeBlock(block: Buffer): Record<string, string> {
  let fields = decodedBlocks.get(block);
  if (fields === undefined) {
    const list: string[] = [];
    new HpackDecoder().decode(block, list);
    fields = {};
    for (let i = 0; i < list.length; i += 2) fields[list[i]!] = list[i + 1]!;
    decodedBlocks.set(block, fields);
  }
  return fields;
}

/**
 * A stand-in for the client stream of a bind: an H2Stream (src/h2: method,
 * path, header(), rawHeaders, connection, respond(EncodedHeaders | object))
 * and a node:http2 ServerHttp2Stream (session, on/once/resume) at once, so
 * that the same fake serves the code before and after the data port moved
 * onto src/h2.
 */
function fakeStream(remote: string, headers: Record<string, string>) {
  const rawHeaders: string[] = [];
  for (const [k, v] of Object.entries(headers)) rawHeaders.push(k, v);
  return {
    destroyed: false,
    closed: false,
    headersSent: false,
    writableEnded: false,
    status: '',
    forward: undefined as string | undefined,
    method: headers[':method'],
    path: headers[':path'],
    rawHeaders,
    header(name: string): string | undefined {
      for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i] === name) return rawHeaders[i + 1];
      return undefined;
    },
    connection: { remoteAddress: remote, destroyed: false },
    session: { socket: { remoteAddress: remote } },
    on() {},
    once() {},
    resume() {},
    respond(h: Record<string, string | number> | { block: Buffer }) {
      const fields = Buffer.isBuffer((h as { block?: unknown }).block) ? decodeBlock((h as { block: Buffer }).block) : (h as Record<string, string | number>);
      this.status = String(fields[':status']);
      this.forward = fields['rebind-forward'] as string | undefined;
      this.headersSent = true;
      this.writableEnded = true;
    },
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const gc = (globalThis as { gc?: () => void }).gc;
function heapUsed(): number {
  if (gc === undefined) throw new Error('run with node --expose-gc (npx tsx --expose-gc bench/hotpath.ts)');
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** (a) µs per report, median over rounds, old and new alternating. */
function measureReports(impls: Impl[], members: number, rounds: number): Record<string, number> {
  const cores = impls.map((impl) => {
    const core = new Core(impl);
    core.attachMembers(members);
    for (let w = 0; w < 3; w++) core.reportRound(); // warm-up: JIT, every member reported
    return core;
  });
  const samples = impls.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    cores.forEach((core, k) => samples[k]!.push((core.reportRound() * 1000) / members));
  }
  return Object.fromEntries(impls.map((impl, k) => [impl.label, round1(median(samples[k]!))]));
}

/**
 * (b) µs per bind of a new client at `members` members with `ledger`
 * clients bound already, at `ratePerS` binds per second of virtual time
 * (each round is one report interval of binds, after which every member
 * reports: its pending binds are folded in, as they would be).
 */
function measureBinds(impls: Impl[], members: number, ledger: number, ratePerS: number, rounds: number): Record<string, number> {
  const stepMs = 1000 / ratePerS;
  const perRound = Math.round((REPORT_INTERVAL_MS * ratePerS) / 1000);
  const cores = impls.map((impl) => {
    const core = new Core(impl);
    core.attachMembers(members);
    core.reportRound();
    let c = 0;
    for (; c < ledger; c++) {
      core.clock.t += stepMs;
      core.bind(`pre-${c}-client`, `10.2.0.${c % 100}`);
      if (c % perRound === perRound - 1) core.reportRound(0);
    }
    return { core, next: c };
  });
  const samples = impls.map(() => [] as number[]);
  for (let r = 0; r < rounds; r++) {
    cores.forEach((entry, k) => {
      const { core } = entry;
      const start = performance.now();
      for (let b = 0; b < perRound; b++) {
        core.clock.t += stepMs;
        core.bind(`new-${entry.next++}-client`, `10.2.0.${b % 100}`);
      }
      samples[k]!.push(((performance.now() - start) * 1000) / perRound);
      core.reportRound(0);
    });
  }
  return Object.fromEntries(impls.map((impl, k) => [impl.label, round1(median(samples[k]!))]));
}

/** (c) heap bytes per attached member (reported once) and per bound client. */
function measureMemory(impl: Impl, members: number, clients: number): { perMember: number; perClient: number } {
  const base = heapUsed();
  const core = new Core(impl);
  core.attachMembers(members);
  core.reportRound();
  core.reportRound();
  const withMembers = heapUsed();
  for (let c = 0; c < clients; c++) {
    core.clock.t += 0.1;
    core.bind(`mem-${c}-client-${'x'.repeat(8)}`, `10.3.${(c >> 8) & 255}.${c & 255}`);
  }
  // Past the recent-bind window, so that what stays is what a bound client costs for as long as it is remembered.
  core.reportRound();
  const withClients = heapUsed();
  if (process.env['HOTPATH_DEBUG']) say(`heap base ${base} members ${withMembers} clients ${withClients} ledger ${core.group.ledger.bindingCount} recent ${core.group.ledger.recentCount}`);
  const result = { perMember: Math.round((withMembers - base) / members), perClient: Math.round((withClients - withMembers) / clients) };
  void core; // kept alive until here
  return result;
}

/**
 * With `--profile <dir>`: a CPU profile of a measurement window only (not of
 * setup), written as <dir>/<name>.cpuprofile when the returned function is called.
 */
let profileDir: string | null = null;
function profileWindow(name: string): () => Promise<void> {
  if (profileDir === null) return async () => undefined;
  const dir = profileDir;
  const session = new inspector.Session();
  session.connect();
  const post = (method: string, params?: object) => new Promise<unknown>((resolve, reject) => session.post(method, params, (err, r) => (err ? reject(err) : resolve(r))));
  const started = post('Profiler.enable').then(() => post('Profiler.setSamplingInterval', { interval: 200 })).then(() => post('Profiler.start'));
  return async () => {
    await started;
    const { profile } = (await post('Profiler.stop')) as { profile: unknown };
    writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  };
}

/**
 * (a') µs of this process's CPU per report received over real control
 * streams: the whole balancer (Balancer.start: its control port, where the
 * Attach streams are served by rebind's transport since issue 15 and by the
 * grpc-js server with its interceptor and keepalive before; the analyzer
 * running), and of it the analyzer's share (its analyses timed in place).
 */
async function measureGrpcReports(impl: Impl, members: number, windowMs: number): Promise<{ usPerReport: number; analyzerUsPerReport: number; reportsPerS: number; heapPerMember: number; rssPerMemberKb: number }> {
  const balancer = await impl.Balancer.start({
    config: {
      listen: '127.0.0.1:0',
      controlListen: '127.0.0.1:0',
      // No admin port (its default is a fixed port: two copies measured at once would collide; it is idle here anyway).
      adminListen: null,
      groups: [{ name: GROUP, granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: REPORT_INTERVAL_MS, maxMembers: 100_000 }],
    },
    logger: silent,
    processMetrics: false,
  });
  const registry = balancer.registry;
  let analyzerMs = 0;
  const analyze = balancer.analyzer.analyze.bind(balancer.analyzer);
  balancer.analyzer.analyze = (group, nowMs) => {
    const t = performance.now();
    try {
      return analyze(group, nowMs);
    } finally {
      analyzerMs += performance.now() - t;
    }
  };
  const port = Number(balancer.controlAddress.split(':').pop());
  const heap0 = heapUsed();
  const rss0 = process.memoryUsage().rss;
  const child = fork(path.join(__dirname, 'workers', 'scale-replicas.ts'), ['--balancer', `127.0.0.1:${port}`], { execArgv: process.execArgv.filter((a) => !a.startsWith('--cpu-prof')), stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 1;
  const waiting = new Map<number, (m: Record<string, unknown>) => void>();
  const ready = new Promise<void>((resolve) => {
    child.on('message', (m: Record<string, unknown>) => {
      if (m['type'] === 'ready') resolve();
      const id = m['id'] as number | undefined;
      if (id !== undefined) waiting.get(id)?.(m);
    });
  });
  const request = (m: Record<string, unknown>) =>
    new Promise<Record<string, unknown>>((resolve) => {
      const id = nextId++;
      waiting.set(id, resolve);
      child.send({ ...m, id });
    });
  try {
    await ready;
    const attached = await request({ type: 'attach', n: members });
    if (attached['type'] === 'error') throw new Error(String(attached['error']));
    await new Promise((r) => setTimeout(r, 2 * REPORT_INTERVAL_MS + 500));
    const heap1 = heapUsed();
    const rss1 = process.memoryUsage().rss;
    const reports0 = registry.groups.get(GROUP)!.counters.reports;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const analyzerMs0 = analyzerMs;
    const profile = profileWindow(`grpc-${members}-${impl.label}`);
    await new Promise((r) => setTimeout(r, windowMs));
    const cpu = process.cpuUsage(cpu0);
    await profile();
    const elapsed = performance.now() - t0;
    const reports = registry.groups.get(GROUP)!.counters.reports - reports0;
    return {
      usPerReport: round1((cpu.user + cpu.system) / reports),
      analyzerUsPerReport: round1(((analyzerMs - analyzerMs0) * 1000) / reports),
      reportsPerS: Math.round((reports * 1000) / elapsed),
      heapPerMember: Math.round((heap1 - heap0) / members),
      rssPerMemberKb: round1((rss1 - rss0) / 1024 / members),
    };
  } finally {
    child.kill('SIGTERM');
    await balancer.stop();
  }
}

async function main(): Promise<void> {
  const program = new Command()
    .option('--quick', 'smoke test: few rounds, 1k members only, no gRPC run')
    .option('--compare <dir>', 'a second copy of src/ to measure against (labelled "old")')
    .option('--grpc-members <list>', 'member counts for the gRPC run', '1000,10000')
    .option('--only <parts>', 'comma-separated parts to run: report,bind,memory,grpc', 'report,bind,memory,grpc')
    .option('--profile <dir>', 'write a CPU profile of each measurement window to <dir>')
    .option('--grpc-rounds <n>', 'gRPC windows per copy and member count, each in a fresh process, old and new alternating; medians reported', '1')
    .option('--grpc-concurrent', 'run the copies\' gRPC windows at the same time (each in its own process) instead of one after the other')
    .option('--grpc-window-ms <ms>', 'length of one gRPC measurement window', '10000')
    .option('--memory-child <label>', '(internal) measure the memory of one copy in this fresh process and print it')
    .option('--grpc-child <label>', '(internal) one gRPC window of one copy in this fresh process; prints its figures')
    .parse();
  const opts = program.opts<{ quick?: boolean; compare?: string; grpcMembers: string; grpcRounds: string; grpcWindowMs: string; grpcConcurrent?: boolean; only: string; memoryChild?: string; grpcChild?: string; profile?: string }>();
  const grpcWindowMs = Number(opts.grpcWindowMs);
  const grpcRounds = Number(opts.grpcRounds);
  if (!Number.isInteger(grpcWindowMs) || grpcWindowMs < 1000 || grpcWindowMs > 600_000) throw new Error(`--grpc-window-ms is ${opts.grpcWindowMs}; it must be an integer in 1000..600000`);
  if (!Number.isInteger(grpcRounds) || grpcRounds < 1 || grpcRounds > 20) throw new Error(`--grpc-rounds is ${opts.grpcRounds}; it must be an integer in 1..20`);
  const only = new Set(opts.only.split(','));
  if (opts.profile !== undefined) {
    profileDir = path.resolve(opts.profile);
    mkdirSync(profileDir, { recursive: true });
  }
  const quick = opts.quick === true;
  const impls: Impl[] = [];
  if (opts.compare !== undefined) impls.push(loadImpl('old', opts.compare));
  impls.push(loadImpl('new', path.join(__dirname, '..', 'src')));
  const labels = impls.map((i) => i.label);
  const rounds = quick ? 5 : 15;
  const memMembers = quick ? 1000 : 10_000;
  const memClients = quick ? 10_000 : 100_000;
  if (opts.grpcChild !== undefined) {
    // A fresh process per window: the RSS and heap baselines of one copy are not moved by the other's run.
    const impl = impls.find((i) => i.label === opts.grpcChild)!;
    const members = Number(opts.grpcMembers);
    process.stdout.write(JSON.stringify(await measureGrpcReports(impl, members, grpcWindowMs)) + '\n');
    return;
  }
  if (opts.memoryChild !== undefined) {
    // A fresh process per copy: nothing measured before (code, caches, garbage of other runs) moves its heap.
    const impl = impls.find((i) => i.label === opts.memoryChild)!;
    measureMemory(impl, 100, 100); // warm-up: code and caches loaded before the baseline
    process.stdout.write(JSON.stringify(measureMemory(impl, memMembers, memClients)) + '\n');
    return;
  }

  const reportRows: { members: number; us: Record<string, number> }[] = [];
  for (const members of !only.has('report') ? [] : quick ? [1000] : [1000, 10_000]) {
    const us = measureReports(impls, members, rounds);
    say(`report, ${members} members: ${JSON.stringify(us)} µs`);
    reportRows.push({ members, us });
  }
  const bindRows: { members: number; ledger: number; rate: number; us: Record<string, number> }[] = [];
  for (const ledger of !only.has('bind') ? [] : quick ? [10_000] : [10_000, 100_000]) {
    for (const rate of [BIND_RATE_PER_S]) {
      const us = measureBinds(impls, 1000, ledger, rate, rounds);
      say(`bind, 1000 members, ${ledger} clients, ${rate} binds/s: ${JSON.stringify(us)} µs`);
      bindRows.push({ members: 1000, ledger, rate, us });
    }
  }
  const memory: { label: string; perMember: number; perClient: number }[] = [];
  for (const impl of only.has('memory') ? impls : []) {
    const args = [process.argv[1]!, ...process.argv.slice(2).filter((a) => a !== '--memory-child'), '--memory-child', impl.label];
    const out = execFileSync(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--cpu-prof')), '--expose-gc', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    memory.push({ label: impl.label, ...(JSON.parse(out.trim().split('\n').pop()!) as { perMember: number; perClient: number }) });
  }
  say(`memory: ${JSON.stringify(memory)}`);
  const grpcRows: { members: number; label: string; usPerReport: number; analyzerUsPerReport: number; reportsPerS: number; heapPerMember: number; rssPerMemberKb: number }[] = [];
  if (!quick && only.has('grpc')) {
    type GrpcFigures = Awaited<ReturnType<typeof measureGrpcReports>>;
    for (const members of opts.grpcMembers.split(',').map(Number)) {
      const samples = new Map<string, GrpcFigures[]>(impls.map((i) => [i.label, []]));
      for (let r = 0; r < grpcRounds; r++) {
        const window = async (impl: Impl): Promise<void> => {
          const args = [process.argv[1]!, ...process.argv.slice(2).filter((a, k, all) => a !== '--grpc-members' && all[k - 1] !== '--grpc-members'), '--grpc-members', String(members), '--grpc-child', impl.label];
          const { stdout } = await execFileAsync(process.execPath, [...process.execArgv.filter((a) => !a.startsWith('--cpu-prof')), '--expose-gc', ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
          const figures = JSON.parse(stdout.trim().split('\n').pop()!) as GrpcFigures;
          say(`report over gRPC, ${members} members, ${impl.label}, round ${r + 1}/${grpcRounds}: ${JSON.stringify(figures)}`);
          samples.get(impl.label)!.push(figures);
        };
        if (opts.grpcConcurrent === true) {
          // Both copies at once, each in its own process with its own replicas: a noisy machine's load falls on both alike.
          await Promise.all(impls.map(window));
        } else {
          // Alternating which copy goes first, so that a drift of the machine's load over the run falls on both.
          for (const impl of r % 2 === 0 ? impls : [...impls].reverse()) await window(impl);
        }
      }
      for (const impl of impls) {
        const xs = samples.get(impl.label)!;
        const med = (k: keyof GrpcFigures) => round1(median(xs.map((x) => x[k])));
        grpcRows.push({ members, label: impl.label, usPerReport: med('usPerReport'), analyzerUsPerReport: med('analyzerUsPerReport'), reportsPerS: Math.round(med('reportsPerS')), heapPerMember: Math.round(med('heapPerMember')), rssPerMemberKb: med('rssPerMemberKb') });
      }
    }
  }

  const ratio = (us: Record<string, number>) => (us['old'] !== undefined && us['new'] !== undefined ? ` ${Math.round((us['new'] / us['old']) * 100) / 100} |` : '');
  const head = labels.map((l) => `${l} µs`).join(' | ') + (labels.length > 1 ? ' | new/old' : '');
  const sep = labels.map(() => '---:').join(' | ') + (labels.length > 1 ? ' | ---:' : '');
  const md = [
    '# Hot path',
    '',
    `\`npx tsx --expose-gc bench/hotpath.ts${opts.compare !== undefined ? ' --compare <old src>' : ''}\`${quick ? ' (--quick)' : ''} — the balancer's own work per load report and per bind, in one process without sockets, on virtual time; medians of ${rounds} rounds${labels.length > 1 ? ', old and new code alternating round by round' : ''}. ${machine().cpus} cores.`,
    '',
    `## CPU per load report (control handler + validation + applyReport + liveness sweeps), ${TOP_CLIENTS_PER_REPORT} top clients per report`,
    '',
    `| members | ${head} |`,
    `| ---: | ${sep} |`,
    ...reportRows.map((r) => `| ${r.members} | ${labels.map((l) => r.us[l]).join(' | ')} |${ratio(r.us)}`),
    '',
    '## CPU per bind of a new rebind client (DataPlane.onStream: choose, ledger, voucher, Trailers-Only response)',
    '',
    `| members | clients in ledger | binds/s (virtual time) | ${head} |`,
    `| ---: | ---: | ---: | ${sep} |`,
    ...bindRows.map((r) => `| ${r.members} | ${r.ledger} | ${r.rate} | ${labels.map((l) => r.us[l]).join(' | ')} |${ratio(r.us)}`),
    '',
    `## Heap (after forced GC) per attached member (${memMembers}, each reported) and per bound client (${memClients})`,
    '',
    '| code | bytes per member | bytes per bound client |',
    '| --- | ---: | ---: |',
    ...memory.map((m) => `| ${m.label} | ${m.perMember} | ${m.perClient} |`),
    '',
    ...(grpcRows.length > 0
      ? [
          `## CPU per load report over real gRPC control streams (the whole balancer in a fresh process per window of ${grpcWindowMs} ms, analyzer running; replicas in a child process, one connection each; medians of ${grpcRounds} window(s) per copy${labels.length > 1 ? (opts.grpcConcurrent === true ? ', old and new running at the same time' : ', old and new alternating') : ''})`,
          '',
          '| members | code | µs per report | of which analyzer | reports/s | heap bytes per member | RSS KB per member |',
          '| ---: | --- | ---: | ---: | ---: | ---: | ---: |',
          ...grpcRows.map((r) => `| ${r.members} | ${r.label} | ${r.usPerReport} | ${r.analyzerUsPerReport} | ${r.reportsPerS} | ${r.heapPerMember} | ${r.rssPerMemberKb} |`),
          '',
        ]
      : []),
    'Bound client: what the ledger keeps per client (remembered binding, recent bind) with the members\' tables; a member: its control session, Member, latest report and its top clients. Heap only (RSS includes grpc-js buffers and sockets: see the gRPC table).',
    '',
  ].join('\n');
  const json = { machine: machine(), quick, rounds, reports: reportRows, binds: bindRows, memory, grpc: grpcRows };
  const dir = path.join(__dirname, 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'hotpath.json'), JSON.stringify(json, null, 2) + '\n');
  writeFileSync(path.join(dir, 'hotpath.md'), md);
  say(md);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
