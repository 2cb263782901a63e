/**
 * Herding benchmark (issue 14): do several balancers binding from the same
 * reports pile new clients onto one member?
 *
 * Each trial, in this process over loopback sockets: 3 balancers (no `ha`:
 * each binds from its own control streams' reports, as an HA set's members
 * do), replicas r1..r3 attached to all three and carrying RESIDENT clients
 * (bound through balancer 1, calling at RATE_PER_S each, so that every
 * balancer sees them loaded), then r4 joins empty (the classic herd: a new
 * member looks lightest to everyone). Once every balancer has r4's reports,
 * a burst of BURST new clients binds at once:
 *   spread: a third through each balancer (clients listing the balancers in
 *           different orders, or a DNS name answering in turn);
 *   one:    all through balancer 1 (clients listing the same first balancer).
 * Result per trial: clients per replica after the burst (resident + new),
 * max/mean (1 = even). Rules, run in interleaved trials (order rotated):
 *   today:       least projected load, the balancer's own pending binds;
 *   x_peers:     pending binds x live balancers (registry.peerBalancers = 3);
 *   p2c:         strategy p2c (best of two at random), own pending binds;
 *   p2c_x_peers: p2c with pending binds x live balancers.
 * Reports the median (and worst) max/mean over the trials per rule and
 * distribution. Writes bench/results/herd.{json,md} (not with --quick).
 *
 *     npx tsx bench/herd.ts [--trials 7] [--quick]
 */
import * as grpc from '@grpc/grpc-js';
import { Command } from 'commander';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Balancer } from '../src/balancer/balancer';
import { attach, type Replica } from '../src/replica/attach';
import { clientOptions } from '../src/interceptors/client-options';
import { machine, RESULTS_DIR, say } from './lib/common';
import { echoImplementation, echoService, type EchoClient, type EchoReply } from './lib/echo';

// The trials' expected info lines (attach, detach) would bury the results; REBIND_LOG_LEVEL overrides.
process.env['REBIND_LOG_LEVEL'] ??= 'error';

export const RULES = ['today', 'x_peers', 'p2c', 'p2c_x_peers'] as const;
type Rule = (typeof RULES)[number];
export const DISTRIBUTIONS = ['spread', 'one'] as const;
type Distribution = (typeof DISTRIBUTIONS)[number];

const BALANCERS = 3;
/** Resident clients (on r1..r3 before r4 joins). */
const RESIDENT = 12;
/** New clients binding at once. */
const BURST = 12;
/** Calls/s of each client (resident and new). */
const RATE_PER_S = 20;
const REPORT_INTERVAL_MS = 100;
/** Time for every balancer's loads to settle after r4 joins (reports from all four), ms. */
const SETTLE_MS = 1500;

interface TrialResult {
  rule: Rule;
  distribution: Distribution;
  /** Clients per replica after the burst (resident + new), r1..r4. */
  clients: number[];
  /** Of the burst, those bound to r4 (the member that joined empty). */
  newOnR4: number;
  maxOverMean: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function unary(client: EchoClient, text: string): Promise<EchoReply> {
  return new Promise((resolve, reject) => client.Unary({ text }, { deadline: Date.now() + 5000 }, (err, reply) => (err ? reject(err) : resolve(reply!))));
}

async function startReplica(name: string, controls: string[]): Promise<{ server: grpc.Server; replica: Replica }> {
  const server = new grpc.Server();
  server.addService(echoService().service, echoImplementation(name, { served: 0 }));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const replica = await attach(server, { balancer: controls, group: 'echo', address: `127.0.0.1:${port}` });
  return { server, replica };
}

/** A client calling at RATE_PER_S from its first (binding) call; resolves with the replica that answered first. */
function startClient(target: string, stop: { stopped: boolean }, clients: EchoClient[]): Promise<string> {
  const Echo = echoService();
  const client = new Echo(target, grpc.credentials.createInsecure(), clientOptions()) as unknown as EchoClient;
  clients.push(client);
  return unary(client, 'bind').then((reply) => {
    void (async () => {
      while (!stop.stopped) {
        await sleep(1000 / RATE_PER_S);
        await unary(client, 'load').catch(() => undefined);
      }
    })();
    return reply.servedBy;
  });
}

/** Waits (at most 10 s) until every balancer has `n` members that have reported. */
async function everyBalancerHas(balancers: Balancer[], n: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  const ready = () => balancers.every((b) => [...(b.registry.groups.get('echo')?.members.values() ?? [])].filter((m) => m.reports > 0).length === n);
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`not every balancer has ${n} reporting members after 10 s`);
    await sleep(10);
  }
}

async function trial(rule: Rule, distribution: Distribution): Promise<TrialResult> {
  const strategy = rule.startsWith('p2c') ? 'p2c' : 'minimum_dispersion';
  const balancers = await Promise.all(
    Array.from({ length: BALANCERS }, () =>
      Balancer.start({
        config: {
          listen: '127.0.0.1:0',
          controlListen: '127.0.0.1:0',
          adminListen: null,
          // per-session: binds only, no planned moves, so that what is measured is the bind choice.
          groups: [{ name: 'echo', granularity: 'per-session', metric: 'calls_per_s', reportIntervalMs: REPORT_INTERVAL_MS, strategy: { name: strategy } }],
        },
      }),
    ),
  );
  for (const b of balancers) b.registry.peerBalancers = rule.endsWith('x_peers') ? () => BALANCERS : () => 1;
  const controls = balancers.map((b) => b.controlAddress);
  const stop = { stopped: false };
  const clients: EchoClient[] = [];
  const replicas: { server: grpc.Server; replica: Replica }[] = [];
  try {
    for (const name of ['r1', 'r2', 'r3']) replicas.push(await startReplica(name, controls));
    // attach() resolves on the first balancer's acceptance: wait for every balancer's reports.
    await everyBalancerHas(balancers, 3);
    const counts: Record<string, number> = { r1: 0, r2: 0, r3: 0, r4: 0 };
    // Residents one at a time through balancer 1: an even start on r1..r3.
    for (let i = 0; i < RESIDENT; i++) counts[await startClient(balancers[0]!.address, stop, clients)]!++;
    replicas.push(await startReplica('r4', controls));
    await everyBalancerHas(balancers, 4);
    await sleep(SETTLE_MS);
    const through = (i: number) => balancers[distribution === 'spread' ? i % BALANCERS : 0]!.address;
    const burst = await Promise.all(Array.from({ length: BURST }, (_, i) => startClient(through(i), stop, clients)));
    for (const name of burst) counts[name]!++;
    const list = ['r1', 'r2', 'r3', 'r4'].map((n) => counts[n]!);
    const mean = list.reduce((a, b) => a + b, 0) / list.length;
    return { rule, distribution, clients: list, newOnR4: burst.filter((n) => n === 'r4').length, maxOverMean: Math.max(...list) / mean };
  } finally {
    stop.stopped = true;
    for (const c of clients) c.close();
    for (const r of replicas) {
      await r.replica.detach('trial over');
      r.server.forceShutdown();
    }
    await Promise.all(balancers.map((b) => b.stop()));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface HerdSummary {
  rule: Rule;
  distribution: Distribution;
  trials: number;
  medianMaxOverMean: number;
  worstMaxOverMean: number;
  medianNewOnR4: number;
}

export function summarize(results: TrialResult[]): HerdSummary[] {
  const out: HerdSummary[] = [];
  for (const distribution of DISTRIBUTIONS) {
    for (const rule of RULES) {
      const mine = results.filter((r) => r.rule === rule && r.distribution === distribution);
      if (mine.length === 0) continue;
      out.push({
        rule,
        distribution,
        trials: mine.length,
        medianMaxOverMean: median(mine.map((r) => r.maxOverMean)),
        worstMaxOverMean: Math.max(...mine.map((r) => r.maxOverMean)),
        medianNewOnR4: median(mine.map((r) => r.newOnR4)),
      });
    }
  }
  return out;
}

async function main(opts: { trials: string; quick?: boolean; rules?: string }): Promise<void> {
  const trials = opts.quick ? 1 : Number(opts.trials);
  if (!Number.isInteger(trials) || trials < 1 || trials > 100) throw new Error(`--trials must be an integer 1..100, got ${opts.trials}`);
  const rules = (opts.rules?.split(',') ?? [...RULES]) as Rule[];
  for (const r of rules) if (!(RULES as readonly string[]).includes(r)) throw new Error(`--rules: unknown rule ${r} (known: ${RULES.join(', ')})`);
  const results: TrialResult[] = [];
  for (let t = 0; t < trials; t++) {
    for (const distribution of DISTRIBUTIONS) {
      // Interleaved, order rotated per trial: drift on the machine hits every rule alike.
      const order = rules.map((_, i) => rules[(i + t) % rules.length]!);
      for (const rule of order) {
        const r = await trial(rule, distribution);
        results.push(r);
        say(`trial ${t + 1}/${trials} ${distribution} ${rule}: clients ${r.clients.join('/')} (r4 got ${r.newOnR4} of ${BURST} new), max/mean ${r.maxOverMean.toFixed(2)}`);
      }
    }
  }
  const summary = summarize(results);
  const lines = [
    '# Herding: 3 balancers binding a burst at once',
    '',
    `${BALANCERS} balancers (in-process, no etcd), r1..r3 with ${RESIDENT} resident clients (${RATE_PER_S} calls/s each), r4 joins empty, then ${BURST} new clients bind at once;`,
    `report interval ${REPORT_INTERVAL_MS} ms, metric calls_per_s, per-session. ${trials} interleaved trial(s) per rule. Machine: ${JSON.stringify(machine())}.`,
    '',
    '| distribution | rule | trials | max/mean clients (median) | worst | new clients on r4 (median, ideal 6) |',
    '|---|---|---:|---:|---:|---:|',
    ...summary.map((s) => `| ${s.distribution} | ${s.rule} | ${s.trials} | ${s.medianMaxOverMean.toFixed(2)} | ${s.worstMaxOverMean.toFixed(2)} | ${s.medianNewOnR4} |`),
  ];
  console.log(lines.join('\n'));
  if (!opts.quick) {
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(path.join(RESULTS_DIR, 'herd.json'), JSON.stringify({ machine: machine(), trials, results, summary }, null, 2) + '\n');
    writeFileSync(path.join(RESULTS_DIR, 'herd.md'), lines.join('\n') + '\n');
    say(`wrote ${path.join(RESULTS_DIR, 'herd.{json,md}')}`);
  }
}

if (require.main === module) {
  new Command('herd')
    .option('--trials <n>', 'interleaved trials per rule and distribution', '7')
    .option('--rules <list>', `comma-separated subset of ${RULES.join(',')}`)
    .option('--quick', 'one trial, no results written')
    .action(async (opts: { trials: string; quick?: boolean; rules?: string }) => {
      try {
        await main(opts);
        process.exit(0);
      } catch (err) {
        console.error(`herd: ${(err as Error).message}`);
        process.exit(1);
      }
    })
    .parse(process.argv);
}
