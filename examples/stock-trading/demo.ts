/**
 * `npm run demo`: the stock-trading system on loopback, load balanced by
 * rebind. Starts a balancer, 4 factory replicas and 8 trading clients (half
 * of them twice as busy) as separate processes; runs per-session round-robin
 * first (the load stays uneven, as in the paper's Figure 5), then switches to
 * on-demand minimum dispersion and shows the loads converge (Figure 6).
 * Ends after --duration seconds, or on Ctrl-C, stopping every process it
 * started; --json prints the summary as one JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { Command, InvalidArgumentError } from 'commander';
import { adminCall, adminClient } from '../../src/cli/admin-client';
import type { AdminClient } from '../../src/generated/rebind/v1/Admin';
import type { ListGroupsResponse__Output } from '../../src/generated/rebind/v1/ListGroupsResponse';
import { maxOverMean, round } from '../../src/sim/quality';

const CLI = path.join(__dirname, '../../src/cli/main.js');
const GROUP = 'stock';
const SAMPLE_MS = 250;
/** Loads are averaged over this window before max/mean is judged (reports are noisy). */
const SMOOTH_MS = 2000;

interface Options {
  duration: number;
  json: boolean;
  replicas: number;
  clients: number;
  reportIntervalMs: number;
  rate: number;
}

interface Child {
  name: string;
  process: ChildProcess;
  exited: Promise<number | null>;
}

interface Sample {
  tMs: number;
  loads: number[];
}

interface Summary {
  summary: {
    per_session: { max_over_mean: number };
    on_demand: { max_over_mean: number; convergence_s: number | null; rebinds: number };
    failed_calls: number;
  };
}

function positive(name: string) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${value}"`);
    return n;
  };
}

class Demo {
  private readonly children: Child[] = [];
  private readonly samples: Sample[] = [];
  private readonly events: string[] = [];
  private readonly replicaNames = new Map<string, string>();
  /** Member id (as the balancer logs it) -> replica name. */
  private readonly memberNames = new Map<string, string>();
  private readonly rebindTimes: number[] = [];
  private readonly stats = new Map<string, { failedCalls: number; completed: number }>();
  private admin: AdminClient | null = null;
  private control = '';
  /** The balancer's dashboard URL ('' if it has no admin port). */
  private dashboard = '';
  private data = '';
  private startMs = 0;
  private switchMs = Number.POSITIVE_INFINITY;
  /** When every trader was running: phase 1 and its warm-up count from here (starting traders takes longer on a loaded machine). */
  private tradersReadyMs = 0;
  private phase = 'starting';
  private strategyLine = '';
  private stopping: Promise<Summary> | null = null;
  private readonly tmp = mkdtempSync(path.join(tmpdir(), 'rebind-demo-'));
  private readonly live: boolean;

  constructor(private readonly opts: Options) {
    this.live = !opts.json && process.stdout.isTTY === true;
  }

  private note(text: string): void {
    const t = this.startMs > 0 ? ((Date.now() - this.startMs) / 1000).toFixed(1).padStart(5) + ' s  ' : '';
    this.events.push(t + text);
    if (this.events.length > 8) this.events.shift();
    if (!this.live && !this.opts.json) console.log(t + text);
  }

  /** Starts a child process running the rebind CLI; resolves once `ready` matches a line of its stdout. */
  private start(name: string, args: string[], ready: (line: string) => boolean, onLine?: (line: string) => void, logLevel = 'warn'): Promise<void> {
    const proc = spawn(process.execPath, [CLI, ...args, '--exit-with-parent'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, REBIND_LOG_LEVEL: logLevel },
    });
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    this.children.push({ name, process: proc, exited });
    let stderr = '';
    proc.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    return new Promise((resolve, reject) => {
      let isReady = false;
      createInterface({ input: proc.stdout! }).on('line', (line) => {
        if (!isReady && ready(line)) {
          isReady = true;
          resolve();
        }
        onLine?.(line);
      });
      void exited.then((code) => {
        if (!isReady) reject(new Error(`${name} exited (code ${code}) before it was ready: ${stderr.trim().split('\n').slice(-3).join(' | ')}`));
      });
    });
  }

  async run(): Promise<Summary> {
    const o = this.opts;
    const config = path.join(this.tmp, 'balancer.yaml');
    writeFileSync(
      config,
      [
        'listen: 127.0.0.1:0',
        'controlListen: 127.0.0.1:0',
        'adminListen: 127.0.0.1:0',
        // The demo's dashboard may switch strategies without a token: it listens on loopback only.
        'security:',
        '  adminUnauthenticatedChanges: true',
        'groups:',
        `  - name: ${GROUP}`,
        '    granularity: per-session',
        '    strategy: round_robin',
        `    reportIntervalMs: ${o.reportIntervalMs}`,
        '',
      ].join('\n'),
    );
    await this.start(
      'balancer',
      ['balancer', '--config', config],
      (line) => {
        const m = /^balancer listening: data (\S+), control ([^\s,]+)(?:, admin (\S+))?$/.exec(line);
        if (m === null) return false;
        this.data = m[1]!;
        this.control = m[2]!;
        this.dashboard = m[3] ?? '';
        return true;
      },
      (line) => this.balancerLog(line),
      'info',
    );
    this.admin = adminClient(this.control);
    this.note(`balancer: clients target ${this.data}, replicas attach to ${this.control}${this.dashboard ? `; dashboard ${this.dashboard}` : ''}`);
    await Promise.all(
      Array.from({ length: o.replicas }, (_, i) =>
        this.start(`r${i + 1}`, ['replica', '--balancer', this.control, '--group', GROUP, '--name', `r${i + 1}`], (line) => {
          const m = /^replica (\S+) serving on (\S+),/.exec(line);
          if (m !== null) this.replicaNames.set(m[2]!, m[1]!);
          return m !== null;
        }),
      ),
    );
    this.note(`${o.replicas} factory replicas attached`);
    this.startMs = Date.now();
    // Traders start one after another so that round-robin binds them in turn: 1 -> r1, 2 -> r2, ...
    for (let i = 0; i < o.clients; i++) {
      const name = `c${i + 1}`;
      const rate = i % 2 === 0 ? 2 * o.rate : o.rate;
      await this.start(name, ['client', '--balancer-address', this.data, '--name', name, '--rate', String(rate), '--json'], (line) => line.includes('"event":"ready"'), (line) => this.clientLine(name, line));
    }
    this.note(`${o.clients} traders started (${Math.ceil(o.clients / 2)} at ${2 * o.rate} sessions/s, ${Math.floor(o.clients / 2)} at ${o.rate}); per-session round-robin`);
    this.phase = 'phase 1/2: per-session round-robin (bindings never move)';
    this.tradersReadyMs = Date.now();
    const sampler = setInterval(() => void this.sample(), SAMPLE_MS);
    const render = this.live ? setInterval(() => this.render(), 500) : null;
    const perSessionMs = Math.max(5000, 0.4 * o.duration * 1000);
    await this.sleepUntil(this.tradersReadyMs + perSessionMs);
    if (this.stopping === null) {
      await adminCall(this.admin, this.control, 'SetGranularity', { group: GROUP, granularity: 'on-demand' });
      await adminCall(this.admin, this.control, 'SetStrategy', { group: GROUP, strategy: 'minimum_dispersion', paramsJson: '' });
      this.switchMs = Date.now();
      this.phase = 'phase 2/2: on-demand, minimum_dispersion (targeted re-binds)';
      this.note('switched the group to on-demand + minimum_dispersion');
    }
    // Phase 2 gets the rest of the duration, however long the traders took to start.
    await this.sleepUntil(this.tradersReadyMs + Math.max(o.duration * 1000, perSessionMs + 5000));
    clearInterval(sampler);
    if (render !== null) clearInterval(render);
    return this.stop();
  }

  private async sleepUntil(atMs: number): Promise<void> {
    while (Date.now() < atMs && this.stopping === null) await new Promise((r) => setTimeout(r, Math.min(100, atMs - Date.now())));
  }

  private balancerLog(line: string): void {
    if (!line.startsWith('{')) return;
    try {
      const entry = JSON.parse(line) as { msg?: string; module?: string };
      if (entry.msg !== undefined && /^advisory/.test(entry.msg)) {
        this.note(`balancer: ${entry.msg.replace(/\bm[0-9]+\b/g, (id) => this.memberNames.get(id) ?? id)}`);
      }
    } catch {
      // not a log line
    }
  }

  private clientLine(name: string, line: string): void {
    let event: { event?: string; from?: string; to?: string; failedCalls?: number; completed?: number };
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    if (event.event === 'rebind') {
      this.rebindTimes.push(Date.now());
      this.note(`${name} re-bound ${this.replicaNames.get(event.from!) ?? event.from} -> ${this.replicaNames.get(event.to!) ?? event.to}`);
    } else if (event.event === 'stats') {
      this.stats.set(name, { failedCalls: event.failedCalls ?? 0, completed: event.completed ?? 0 });
    }
  }

  private async sample(): Promise<void> {
    if (this.admin === null || this.stopping !== null) return;
    try {
      const reply = await adminCall<ListGroupsResponse__Output>(this.admin, this.control, 'ListGroups', { group: GROUP });
      const group = reply.groups[0];
      if (group === undefined) return;
      this.strategyLine = `granularity ${group.granularity}, strategy ${group.strategy}`;
      const names = [...this.replicaNames.keys()].sort((a, b) => this.replicaNames.get(a)!.localeCompare(this.replicaNames.get(b)!, undefined, { numeric: true }));
      const byAddress = new Map(group.members.map((m) => [m.address, m.callsPerS]));
      for (const m of group.members) this.memberNames.set(m.memberId, this.replicaNames.get(m.address) ?? m.memberId);
      this.samples.push({ tMs: Date.now(), loads: names.map((a) => byAddress.get(a) ?? 0) });
    } catch {
      // The balancer is busy or stopping; the next sample will tell.
    }
  }

  /** Per-replica loads averaged over [fromMs, toMs). */
  private meanLoads(fromMs: number, toMs: number): number[] | null {
    const rows = this.samples.filter((s) => s.tMs >= fromMs && s.tMs < toMs);
    if (rows.length === 0) return null;
    return rows[0]!.loads.map((_, i) => rows.reduce((sum, r) => sum + r.loads[i]!, 0) / rows.length);
  }

  private render(): void {
    const t = (Date.now() - this.startMs) / 1000;
    const last = this.meanLoads(Date.now() - SMOOTH_MS, Date.now()) ?? [];
    const names = [...this.replicaNames].sort((a, b) => a[1].localeCompare(b[1], undefined, { numeric: true }));
    const top = Math.max(1, ...this.samples.flatMap((s) => s.loads));
    const lines = [
      `rebind demo: stock trading, ${this.opts.replicas} factory replicas, ${this.opts.clients} traders        t = ${t.toFixed(1)} s of ${this.opts.duration} s`,
      `${this.phase}`,
      `group ${GROUP}: ${this.strategyLine}`,
      '',
      ...names.map(([address, name], i) => {
        const load = last[i] ?? 0;
        const width = 40;
        const filled = Math.round((load / top) * width);
        return `  ${name.padEnd(4)} ${address.padEnd(21)} ${'█'.repeat(filled)}${'░'.repeat(width - filled)} ${load.toFixed(1).padStart(6)} calls/s`;
      }),
      '',
      `  max/mean ${last.length > 0 ? maxOverMean(last).toFixed(2) : '-'}    re-binds ${this.rebindTimes.length}    (loads: mean of the replicas' reports over the last ${SMOOTH_MS / 1000} s)`,
      '',
      'recent events:',
      ...this.events.map((e) => `  ${e}`),
    ];
    process.stdout.write(`\x1b[H\x1b[2J${lines.join('\n')}\n`);
  }

  /** Stops every child (traders first, so they report), then computes the summary. Idempotent. */
  stop(): Promise<Summary> {
    this.stopping ??= (async () => {
      const order = [(c: Child) => c.name.startsWith('c'), (c: Child) => c.name.startsWith('r'), (c: Child) => c.name === 'balancer'];
      for (const which of order) {
        const batch = this.children.filter(which);
        for (const c of batch) c.process.kill('SIGTERM');
        await Promise.all(batch.map((c) => Promise.race([c.exited, new Promise((r) => setTimeout(r, 5000))])));
        for (const c of batch) if (c.process.exitCode === null && c.process.signalCode === null) c.process.kill('SIGKILL');
      }
      await Promise.all(this.children.map((c) => c.exited));
      this.admin?.close();
      rmSync(this.tmp, { recursive: true, force: true });
      return this.summary();
    })();
    return this.stopping;
  }

  private summary(): Summary {
    const warmUpMs = this.tradersReadyMs + 3000;
    const perSession = this.meanLoads(warmUpMs, Math.min(this.switchMs, Date.now()));
    const end = this.samples.at(-1)?.tMs ?? Date.now();
    // Convergence: the first time after the switch from which the smoothed max/mean stays <= 1.10.
    let convergence: number | null = null;
    if (Number.isFinite(this.switchMs)) {
      for (const s of this.samples.filter((x) => x.tMs >= this.switchMs + SMOOTH_MS)) {
        const smooth = this.meanLoads(s.tMs - SMOOTH_MS, s.tMs + 1)!;
        if (maxOverMean(smooth) <= 1.1) convergence ??= (s.tMs - this.switchMs) / 1000;
        else convergence = null;
      }
    }
    const steadyFrom = Number.isFinite(this.switchMs) ? Math.max(this.switchMs + (convergence ?? 0) * 1000, this.switchMs + (end - this.switchMs) / 2) : end;
    const onDemand = Number.isFinite(this.switchMs) ? this.meanLoads(steadyFrom, end + 1) : null;
    const failed = [...this.stats.values()].reduce((s, x) => s + x.failedCalls, 0);
    const missing = this.opts.clients - this.stats.size;
    return {
      summary: {
        per_session: { max_over_mean: perSession ? round(maxOverMean(perSession), 3) : NaN },
        on_demand: {
          max_over_mean: onDemand ? round(maxOverMean(onDemand), 3) : NaN,
          convergence_s: convergence === null ? null : round(convergence, 2),
          rebinds: this.rebindTimes.filter((t) => t >= this.switchMs).length,
        },
        // A trader that did not report its statistics counts as one failure.
        failed_calls: failed + Math.max(0, missing),
      },
    };
  }
}

const program = new Command('demo')
  .description('Stock trading on loopback: per-session round-robin, then on-demand minimum dispersion.')
  .option('-d, --duration <s>', 'seconds of trading before the demo ends by itself', positive('--duration'), 60)
  .option('--json', 'print only the summary, as one JSON line')
  .option('--rate <sessions/s>', 'sessions per second of the less busy traders (the others do twice as many)', positive('--rate'), 5)
  .option('--report-interval-ms <ms>', "replicas' load report interval", positive('--report-interval-ms'), 500)
  .action(async (o: { duration: number; json?: boolean; rate: number; reportIntervalMs: number }) => {
    if (o.duration < 10) program.error('--duration must be at least 10 seconds (two phases need time to show)');
    const demo = new Demo({ duration: o.duration, json: o.json === true, replicas: 4, clients: 8, reportIntervalMs: o.reportIntervalMs, rate: o.rate });
    let interrupted = false;
    const onSignal = () => {
      if (interrupted) return;
      interrupted = true;
      void demo.stop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    let summary: Summary;
    try {
      summary = await demo.run();
    } catch (err) {
      await demo.stop();
      console.error(`demo: ${(err as Error).message}`);
      process.exit(1);
    }
    if (o.json) {
      console.log(JSON.stringify(summary));
    } else {
      const s = summary.summary;
      console.log('');
      console.log(`per-session round-robin: max/mean ${s.per_session.max_over_mean} (the uneven split stays)`);
      console.log(`on-demand minimum dispersion: max/mean ${s.on_demand.max_over_mean}, converged in ${s.on_demand.convergence_s ?? '-'} s with ${s.on_demand.rebinds} re-binds`);
      console.log(`failed calls: ${s.failed_calls}${interrupted ? '   (interrupted)' : ''}`);
    }
    process.exit(0);
  });

void program.parseAsync(process.argv);
