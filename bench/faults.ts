/**
 * Faults benchmark (BENCHMARKS.md): clients calling continuously through
 * rebind while a fault is injected, counting what the application saw.
 *   replica_crash     SIGKILL one of 4 replicas
 *   replica_hang      one replica stops answering but keeps its sockets (SIGSTOP)
 *   balancer_restart  kill the balancer and start it again on the same ports
 *   slow_replica      one replica becomes 20x slower
 *   replica_drain     one replica shuts down gracefully (drain) — its clients'
 *                     calls are NOT declared idempotent: a drain must lose none
 *   balancer_failover 3 balancers on a real etcd (HA), replicas attached to
 *                     all, clients listing all three (each channel binds
 *                     through its own pick of them); SIGKILL of the planning leader
 *                     while a fifth replica joins (the next imbalance): time
 *                     until another balancer leads and until it plans
 * Other scenarios' calls are declared idempotent (clientOptions idempotent).
 * Per scenario: calls, failures, recovery, p99 / p99.9 of the calls started
 * in the 5 s before the fault, 0-5 s and 1-5 s after it, and the attempts
 * clients sent to the faulty replica after the fault (from the policy's
 * callSent event), with the last one's time.
 * Writes bench/results/faults.{json,md,svg}; --quick keeps each scenario
 * to 10 s of load (5 s before, 5 s after the fault).
 */
import { Command, InvalidArgumentError } from 'commander';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { adminCall, adminClient } from '../src/cli/admin-client';
import type { ListGroupsResponse__Output } from '../src/generated/rebind/v1/ListGroupsResponse';
import { balancerTarget } from '../src/index';
import { renderSvg } from './lib/charts';
import { EtcdProcess, ensureEtcd } from './lib/etcd';
import { freePort, histogram, machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { startBalancerProcess, Worker, type BalancerProcess, runBenchCommand } from './lib/processes';

const SCENARIOS = ['replica_crash', 'replica_hang', 'balancer_restart', 'slow_replica', 'replica_drain', 'balancer_failover'] as const;
/** balancer_failover: the balancers' lease TTL (etcd here allows 1 s leases: heartbeat 50 ms, see lib/etcd.ts). */
const FAILOVER_LEASE_TTL_MS = 1000;
type Scenario = (typeof SCENARIOS)[number];
const CLIENTS = 8;
const RATE = 50;

interface ScenarioResult {
  calls: number;
  failed_calls: number;
  recovery_ms: number | null;
  /** Successful calls started in the 5 s before the fault: p99 and p99.9, µs. */
  p99_us_before: number | null;
  p999_us_before: number | null;
  /** Started 0-5 s after the fault. */
  p99_us_during: number | null;
  p999_us_during: number | null;
  /** Started 1-5 s after the fault (the first second is the clients' reaction). */
  p99_us_after_1_5s: number | null;
  p999_us_after_1_5s: number | null;
  /** Address of the faulty replica (null: the fault is not a replica's). */
  faulty_replica: string | null;
  /** Clients that sent an attempt to the faulty replica in the second before the fault. */
  clients_on_faulty: number;
  /** Attempts sent to the faulty replica at or after the fault, and 500 ms or more after it. */
  sent_to_faulty_after_fault: number;
  sent_to_faulty_after_500ms: number;
  /** The last attempt sent to the faulty replica, ms after the fault; null: none after the fault. */
  last_sent_to_faulty_ms: number | null;
  /** The same per client (index as the clients were started). */
  last_sent_to_faulty_ms_by_client: (number | null)[];
  /** Per client: its attempts to the faulty replica from the fault on, ms after the fault. */
  sent_to_faulty_ms_by_client: number[][];
  /** Per client: its binding changes from 1 s before the fault on: [ms after the fault, 'bound' | 'unbound', from, to or reason]. */
  binding_events_by_client: (string | number)[][][];
  /** balancer_failover: ms from the SIGKILL until a survivor leads the group, and until it made its first plan. */
  new_leader_ms?: number | null;
  next_plan_ms?: number | null;
  next_plan_moves?: number | null;
  notes: string;
  /** [seconds since the fault, successful calls/s, failed calls/s] per 100 ms. */
  timeline: number[][];
  errors: string[];
}

async function runScenario(name: Scenario, opts: { beforeMs: number; afterMs: number; reportIntervalMs: number }, tmp: string): Promise<ScenarioResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const group = { name: 'bench', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: opts.reportIntervalMs };
    /** A balancer's configuration file on fixed free ports (balancer_restart restarts it on the same ones). */
    const configFile = async (suffix: string, extra: Record<string, unknown> = {}): Promise<string> => {
      const file = path.join(tmp, `${name}${suffix}.json`);
      writeFileSync(file, JSON.stringify({ listen: `127.0.0.1:${await freePort()}`, controlListen: `127.0.0.1:${await freePort()}`, adminListen: '127.0.0.1:0', groups: [group], ...extra }));
      return file;
    };
    const file = await configFile('');
    /** balancer_failover: the HA set (the first one started leads) and its etcd. */
    let set: { id: string; process: BalancerProcess }[] = [];
    if (name === 'balancer_failover') {
      const available = await ensureEtcd();
      if (typeof available === 'string') throw new Error(`balancer_failover needs etcd: ${available}`);
      const etcd = await EtcdProcess.start();
      stops.push(() => etcd.stop());
      for (const id of ['b1', 'b2', 'b3']) {
        const ha = { etcd: { endpoints: [etcd.endpoint], prefix: '/bench/' }, leaseTtlMs: FAILOVER_LEASE_TTL_MS, balancerId: id };
        const process = await startBalancerProcess(await configFile(`-${id}`, { ha }));
        stops.push(() => process.stop());
        set.push({ id, process });
      }
      // The leader is listed first (each rebind channel still takes the list in its own order: binds spread over the three).
      const leaderId = await leaderOf(set.map((b) => b.process), 10_000);
      if (leaderId === null) throw new Error('balancer_failover: no leader within 10 s');
      set = [...set.filter((b) => b.id === leaderId), ...set.filter((b) => b.id !== leaderId)];
    }
    let balancer: BalancerProcess = set.length > 0 ? set[0]!.process : await startBalancerProcess(file);
    if (set.length === 0) stops.push(() => balancer.stop());
    const controls = set.length > 0 ? set.map((b) => b.process.control).join(',') : balancer.control;
    const target = set.length > 0 ? balancerTarget(set.map((b) => b.process.data)) : balancer.data;
    const started = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const { worker, ready } = await Worker.start(`r${i + 1}`, 'prime-replica.js', ['--name', `r${i + 1}`, '--mode', 'rebind', '--balancer', controls, '--group', 'bench']);
        stops.push(() => worker.stop());
        return { worker, address: String(ready['address']) };
      }),
    );
    const replicas = started.map((r) => r.worker);
    const idempotent = name !== 'replica_drain';
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const { worker } = await Worker.start(`c${i + 1}`, 'prime-client.js', ['--mode', 'rebind', '--target', target, ...(idempotent ? ['--idempotent'] : [])]);
        stops.push(() => worker.stop());
        return worker;
      }),
    );
    // Bind each client (round-robin over the 4 replicas: two clients each).
    const boundTo: string[] = [];
    for (const c of clients) boundTo.push(String((await c.request({ type: 'first' }))['servedBy']));
    const victim = replicas[0]!;
    const victimName = 'r1';
    const loads = clients.map((c) => c.request({ type: 'open-loop', rate: RATE, durationMs: opts.beforeMs + opts.afterMs, record: true }));
    await new Promise((r) => setTimeout(r, opts.beforeMs));
    const faultAt = Date.now();
    let notes = '';
    let rebuiltAt: number | null = null;
    const failover: { new_leader_ms: number | null; next_plan_ms: number | null; next_plan_moves: number | null } = { new_leader_ms: null, next_plan_ms: null, next_plan_moves: null };
    switch (name) {
      case 'balancer_failover': {
        const [killed, ...survivors] = set;
        killed!.process.process.kill('SIGKILL');
        // The next imbalance: a fifth replica joins the survivors as the leader dies.
        const { worker } = await Worker.start('r5', 'prime-replica.js', ['--name', 'r5', '--mode', 'rebind', '--balancer', survivors.map((b) => b.process.control).join(','), '--group', 'bench']);
        stops.push(() => worker.stop());
        const watched = await watchFailover(survivors.map((b) => b.process), faultAt, 15_000);
        Object.assign(failover, watched);
        notes = `3 balancers on etcd (lease ${FAILOVER_LEASE_TTL_MS} ms); SIGKILL of the planning leader ${killed!.id} as r5 joins: another leads ${watched.new_leader_ms ?? 'never'} ms after, and plans ${watched.next_plan_moves ?? 0} move(s) ${watched.next_plan_ms ?? 'never'} ms after the kill`;
        break;
      }
      case 'replica_crash':
        victim.process.kill('SIGKILL');
        notes = `SIGKILL of ${victimName} (${boundTo.filter((b) => b === victimName).length} clients bound to it)`;
        break;
      case 'replica_hang':
        victim.process.kill('SIGSTOP');
        stops.push(async () => void victim.process.kill('SIGCONT'));
        notes = `SIGSTOP of ${victimName}: sockets open, nothing answers`;
        break;
      case 'slow_replica':
        await victim.request({ type: 'slow', factor: 20 });
        notes = `${victimName} does 20x the work per call from the fault on`;
        break;
      case 'replica_drain': {
        const drained = await victim.request({ type: 'drain' });
        notes = `${victimName} drained and shut down in ${Number(drained['drainedMs'])} ms (calls not declared idempotent)`;
        break;
      }
      case 'balancer_restart': {
        balancer.process.kill('SIGKILL');
        await new Promise((r) => setTimeout(r, 1000));
        balancer = await startBalancerProcess(file);
        const admin = adminClient(balancer.control);
        stops.push(async () => admin.close());
        // Rebuilt: all four replicas attached again, each with a report.
        const giveUpAt = Date.now() + 30_000;
        for (;;) {
          if (Date.now() > giveUpAt) throw new Error('balancer_restart: the replicas did not re-attach within 30 s of the restart');
          try {
            const g = await adminCall<ListGroupsResponse__Output>(admin, balancer.control, 'ListGroups', { group: 'bench' });
            if (g.groups[0]!.members.length === 4 && g.groups[0]!.members.every((m) => Number(m.reports) > 0)) break;
          } catch {
            // not up yet
          }
          await new Promise((r) => setTimeout(r, 20));
        }
        rebuiltAt = Date.now();
        notes = `balancer SIGKILLed, restarted 1 s later on the same ports; state rebuilt ${rebuiltAt - faultAt - 1000} ms after the restart`;
        break;
      }
    }
    const replies = await Promise.all(loads);
    const records = replies.flatMap((r, client) => ((r['records'] as number[][]) ?? []).map(([start, us, ok]) => ({ client, start: start!, end: start! + us! / 1000, us: us!, ok: ok === 1 })));
    // Attempts each client sent to the faulty replica (the policy's callSent event, see prime-client.ts).
    const faulty = name === 'balancer_restart' || name === 'balancer_failover' ? null : started[0]!.address;
    const toFaulty = replies.map((r) => ((r['sends'] as [number, string][]) ?? []).filter(([, to]) => to === faulty).map(([t]) => t));
    const afterFault = toFaulty.map((ts) => ts.filter((t) => t >= faultAt));
    const lastByClient = afterFault.map((ts) => (ts.length === 0 ? null : Math.max(...ts) - faultAt));
    const lasts = lastByClient.filter((v): v is number => v !== null);
    const errors = [...new Set(replies.flatMap((r) => (r['errors'] as string[]) ?? []))].slice(0, 10);
    // Recovery: every client has completed a successful call that started after the fault.
    let recovery: number | null = 0;
    for (let c = 0; c < CLIENTS; c++) {
      const first = records.filter((r) => r.client === c && r.ok && r.start >= faultAt).sort((a, b) => a.end - b.end)[0];
      if (first === undefined) {
        recovery = null;
        break;
      }
      recovery = Math.max(recovery!, first.end - faultAt);
    }
    if (name === 'balancer_restart' && rebuiltAt !== null) recovery = rebuiltAt - faultAt - 1000;
    /** Percentiles (µs) of the successful calls started in [from, to). */
    const percentiles = (from: number, to: number): [number | null, number | null] => {
      const h = histogram();
      for (const r of records) if (r.ok && r.start >= from && r.start < to) h.recordValue(Math.max(1, r.us));
      return h.totalCount > 0 ? [h.getValueAtPercentile(99), h.getValueAtPercentile(99.9)] : [null, null];
    };
    const before = percentiles(faultAt - 5000, faultAt);
    const during = percentiles(faultAt, faultAt + 5000);
    const after = percentiles(faultAt + 1000, faultAt + 5000);
    const timeline: number[][] = [];
    for (let t = faultAt - opts.beforeMs; t < faultAt + opts.afterMs; t += 100) {
      const inWindow = records.filter((r) => r.end >= t && r.end < t + 100);
      timeline.push([Math.round(t - faultAt) / 1000, inWindow.filter((r) => r.ok).length * 10, inWindow.filter((r) => !r.ok).length * 10]);
    }
    return {
      calls: records.length,
      failed_calls: records.filter((r) => !r.ok).length,
      recovery_ms: recovery === null ? null : Math.round(recovery),
      p99_us_before: before[0],
      p999_us_before: before[1],
      p99_us_during: during[0],
      p999_us_during: during[1],
      p99_us_after_1_5s: after[0],
      p999_us_after_1_5s: after[1],
      faulty_replica: faulty,
      clients_on_faulty: toFaulty.filter((ts) => ts.some((t) => t >= faultAt - 1000 && t < faultAt)).length,
      sent_to_faulty_after_fault: afterFault.reduce((n, ts) => n + ts.length, 0),
      sent_to_faulty_after_500ms: afterFault.reduce((n, ts) => n + ts.filter((t) => t >= faultAt + 500).length, 0),
      last_sent_to_faulty_ms: lasts.length === 0 ? null : Math.round(Math.max(...lasts)),
      last_sent_to_faulty_ms_by_client: lastByClient.map((v) => (v === null ? null : Math.round(v))),
      sent_to_faulty_ms_by_client: afterFault.map((ts) => ts.map((t) => t - faultAt)),
      binding_events_by_client: clients.map((c) =>
        c.events
          .filter((e) => (e.type === 'rebind' || e.type === 'unbound') && Number(e['t']) >= faultAt - 1000)
          .slice(0, 50)
          .map((e) => [Number(e['t']) - faultAt, e.type === 'rebind' ? 'bound' : 'unbound', String(e['from']), String(e.type === 'rebind' ? e['to'] : e['reason']).slice(0, 200)]),
      ),
      ...(name === 'balancer_failover' ? failover : {}),
      notes,
      timeline,
      errors,
    };
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  }
}

/** The id of the balancer that leads group "bench", as the first of `balancers` that answers says; null after `timeoutMs`. */
async function leaderOf(balancers: BalancerProcess[], timeoutMs: number): Promise<string | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const b of balancers) {
      const admin = adminClient(b.control);
      try {
        const r = await adminCall<ListGroupsResponse__Output>(admin, b.control, 'ListGroups', { group: 'bench' });
        const id = r.ha?.leaders.find((l) => l.group === 'bench')?.balancerId ?? '';
        if (id !== '') return id;
      } catch {
        // not up yet
      } finally {
        admin.close();
      }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

/** Polls the surviving balancers: ms from `faultAt` until one says it leads, and until its first plan after the fault. */
async function watchFailover(balancers: BalancerProcess[], faultAt: number, timeoutMs: number): Promise<{ new_leader_ms: number | null; next_plan_ms: number | null; next_plan_moves: number | null }> {
  const out = { new_leader_ms: null as number | null, next_plan_ms: null as number | null, next_plan_moves: null as number | null };
  const admins = balancers.map((b) => ({ b, admin: adminClient(b.control) }));
  try {
    while (Date.now() - faultAt < timeoutMs && out.next_plan_ms === null) {
      for (const { b, admin } of admins) {
        const r = await adminCall<ListGroupsResponse__Output>(admin, b.control, 'ListGroups', { group: 'bench' }).catch(() => null);
        if (r === null) continue;
        if (out.new_leader_ms === null && r.ha?.leaders.some((l) => l.group === 'bench' && l.leading)) out.new_leader_ms = Date.now() - faultAt;
        const plan = r.groups[0]?.lastPlan;
        if (plan != null && Number(plan.atUnixMs) >= faultAt) {
          out.next_plan_ms = Number(plan.atUnixMs) - faultAt;
          out.next_plan_moves = plan.moveCount;
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    for (const { admin } of admins) admin.close();
  }
  return out;
}

async function chart(results: Record<string, ScenarioResult>): Promise<string> {
  const values = Object.entries(results).flatMap(([scenario, r]) =>
    r.timeline.flatMap(([t, ok, failed]) => [
      { scenario, t, series: 'succeeded', rate: ok },
      { scenario, t, series: 'failed', rate: failed },
    ]),
  );
  return renderSvg({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: 'rebind under faults: calls completed per second, 8 clients x 50 calls/s; fault at t = 0',
    data: { values },
    facet: { row: { field: 'scenario', type: 'nominal', title: null, sort: Object.keys(results) } },
    spec: {
      width: 560,
      height: 100,
      layer: [
        {
          mark: { type: 'line', strokeWidth: 1.2 },
          encoding: {
            x: { field: 't', type: 'quantitative', title: 'seconds since the fault' },
            y: { field: 'rate', type: 'quantitative', title: 'calls/s' },
            color: { field: 'series', type: 'nominal', scale: { domain: ['succeeded', 'failed'], range: ['#4c78a8', '#e45756'] } },
          },
        },
        { mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' }, encoding: { x: { datum: 0 } } },
      ],
    },
  });
}

/** µs as ms with one decimal, or '-'. */
function ms(us: number | null): string {
  return us === null ? '-' : (us / 1000).toFixed(1);
}

function markdown(json: { scenarios: Record<string, ScenarioResult>; report_interval_ms: number }, command: string): string {
  return [
    '# Faults',
    '',
    `\`${command}\` — 4 replicas, 8 rebind clients at ${RATE} calls/s each (open loop), on-demand minimum_dispersion, report interval ${json.report_interval_ms} ms.`,
    '',
    '| scenario | calls | failed | recovery ms | p99 / p99.9 ms, 5 s before | p99 / p99.9 ms, 0-5 s after | p99 / p99.9 ms, 1-5 s after | p99 1-5 s after ÷ before | attempts to the faulty replica after the fault (≥ 500 ms after) | last attempt to it, ms after the fault | what happened |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...Object.entries(json.scenarios).map(([key, r]) => {
      const pair = (a: number | null, b: number | null) => `${ms(a)} / ${ms(b)}`;
      const ratio = r.p99_us_after_1_5s !== null && r.p99_us_before !== null ? `${(r.p99_us_after_1_5s / r.p99_us_before).toFixed(2)}x` : '-';
      const none = r.faulty_replica === null;
      return `| ${key} | ${r.calls} | ${r.failed_calls} | ${r.recovery_ms ?? 'never'} | ${pair(r.p99_us_before, r.p999_us_before)} | ${pair(r.p99_us_during, r.p999_us_during)} | ${pair(r.p99_us_after_1_5s, r.p999_us_after_1_5s)} | ${ratio} | ${none ? '-' : `${r.sent_to_faulty_after_fault} (${r.sent_to_faulty_after_500ms})`} | ${none ? '-' : (r.last_sent_to_faulty_ms ?? 'none')} | ${r.notes} |`;
    }),
    '',
    'recovery: until every client has completed a successful call started after the fault (balancer_restart: until all 4 replicas are attached to the new balancer and have reported).',
    'balancer_failover: 3 balancers on one etcd (Debian etcd 3.4 on loopback, lease TTL 1 s); the replicas attach to all three and the clients list all three (each rebind channel takes the list in its own order); the leader is SIGKILLed as a fifth replica joins the survivors; "another leads" and "plans" are read from the survivors\' admin API (ListGroups: ha.leaders, the group\'s last plan), polled every 25 ms.',
    'Latency columns: successful calls by the time they started: in the 5 s before the fault, in the 5 s after it, and from 1 s to 5 s after it (the first second is the clients\' reaction; the issue 12 acceptance compares this column with the one before).',
    'Attempts to the faulty replica (r1; none for balancer_restart and balancer_failover): every attempt a client started on a connection to it, as the rebind policy reports it (`callSent` client event: raised when the attempt\'s HTTP/2 stream is opened to that replica, answered or not), counted from the fault on; the last column is the latest of them over all clients.',
  ].join('\n');
}

async function main(opts: { quick?: boolean; out: string; scenarios?: string; beforeMs?: number; afterMs?: number }): Promise<void> {
  const wanted = (opts.scenarios?.split(',') ?? [...SCENARIOS]) as Scenario[];
  const unknown = wanted.filter((w) => !SCENARIOS.includes(w));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; accepted: ${SCENARIOS.join(', ')}`);
  // At least 5 s before the fault: the "before" percentiles cover the 5 s before it.
  const timing = opts.quick ? { beforeMs: 5000, afterMs: 5000, reportIntervalMs: 500 } : { beforeMs: 6000, afterMs: 10_000, reportIntervalMs: 1000 };
  if (opts.beforeMs !== undefined) timing.beforeMs = opts.beforeMs;
  if (opts.afterMs !== undefined) timing.afterMs = opts.afterMs;
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-faults-'));
  const scenarios: Record<string, ScenarioResult> = {};
  const progress = new Progress('faults', wanted.length);
  for (const name of wanted) {
    say(`scenario ${name}`);
    scenarios[name] = await runScenario(name, timing, tmp);
    const r = scenarios[name]!;
    progress.tick(`${name} done`);
    say(`  calls ${r.calls}, failed ${r.failed_calls}, recovery ${r.recovery_ms} ms, p99 before ${r.p99_us_before} µs, 1-5 s after ${r.p99_us_after_1_5s} µs, last attempt to the faulty replica ${r.last_sent_to_faulty_ms ?? '-'} ms after the fault${r.errors.length ? `; errors: ${r.errors.join(' | ')}` : ''}`);
  }
  progress.stop();
  rmSync(tmp, { recursive: true, force: true });
  const json = { machine: machine(), report_interval_ms: timing.reportIntervalMs, clients: CLIENTS, rate_per_client: RATE, scenarios };
  const command = `npm run bench:faults${opts.quick ? ' -- --quick' : ''}`;
  const md = markdown(json, command);
  const files = writeResults(opts.out, 'faults', json, md, await chart(scenarios));
  say(md);
  say(`wrote ${files.join(', ')}`);
}

function positiveMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1000 || n > 600_000) throw new InvalidArgumentError(`${value}: a whole number of ms, 1000-600000`);
  return n;
}

const program = new Command('bench:faults')
  .description('What clients see when a replica crashes, hangs, slows down or drains, or the balancer restarts.')
  .option('--quick', 'shorter scenarios (5 s before, 5 s after the fault, 500 ms reports)')
  .option('--before-ms <ms>', 'load before the fault, ms (the "before" percentiles cover at most its last 5 s; smoke tests shorten it)', positiveMs)
  .option('--after-ms <ms>', 'load after the fault, ms', positiveMs)
  .option('--scenarios <list>', `comma-separated subset of ${SCENARIOS.join(', ')}`)
  .option('--out <dir>', 'where to write faults.{json,md,svg}', RESULTS_DIR);

runBenchCommand(program, main);
