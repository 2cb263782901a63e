/**
 * Faults benchmark (BENCHMARKS.md): clients calling continuously through
 * rebind while a fault is injected, counting what the application saw.
 *   replica_crash     SIGKILL one of 4 replicas
 *   replica_hang      one replica stops answering but keeps its sockets (SIGSTOP)
 *   balancer_restart  kill the balancer and start it again on the same ports
 *   slow_replica      one replica becomes 20x slower
 *   replica_drain     one replica shuts down gracefully (drain) — its clients'
 *                     calls are NOT declared idempotent: a drain must lose none
 * Other scenarios' calls are declared idempotent (clientOptions idempotent).
 * Writes bench/results/faults.{json,md,svg}.
 */
import { Command } from 'commander';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { adminCall, adminClient } from '../src/cli/admin-client';
import type { ListGroupsResponse__Output } from '../src/generated/rebind/v1/ListGroupsResponse';
import { renderSvg } from './lib/charts';
import { freePort, histogram, machine, Progress, RESULTS_DIR, say, writeResults } from './lib/common';
import { startBalancerProcess, Worker, type BalancerProcess, runBenchCommand } from './lib/processes';

const SCENARIOS = ['replica_crash', 'replica_hang', 'balancer_restart', 'slow_replica', 'replica_drain'] as const;
type Scenario = (typeof SCENARIOS)[number];
const CLIENTS = 8;
const RATE = 50;

interface ScenarioResult {
  calls: number;
  failed_calls: number;
  recovery_ms: number | null;
  p99_us_during: number | null;
  p99_us_before: number | null;
  notes: string;
  /** [seconds since the fault, successful calls/s, failed calls/s] per 100 ms. */
  timeline: number[][];
  errors: string[];
}

async function runScenario(name: Scenario, opts: { beforeMs: number; afterMs: number; reportIntervalMs: number }, tmp: string): Promise<ScenarioResult> {
  const stops: (() => Promise<void>)[] = [];
  try {
    const dataPort = await freePort();
    const controlPort = await freePort();
    const file = path.join(tmp, `${name}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        listen: `127.0.0.1:${dataPort}`,
        controlListen: `127.0.0.1:${controlPort}`,
        adminListen: '127.0.0.1:0',
        groups: [{ name: 'bench', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: opts.reportIntervalMs }],
      }),
    );
    let balancer: BalancerProcess = await startBalancerProcess(file);
    stops.push(() => balancer.stop());
    const replicas = await Promise.all(
      [0, 1, 2, 3].map(async (i) => {
        const { worker } = await Worker.start(`r${i + 1}`, 'prime-replica.js', ['--name', `r${i + 1}`, '--mode', 'rebind', '--balancer', balancer.control, '--group', 'bench']);
        stops.push(() => worker.stop());
        return worker;
      }),
    );
    const idempotent = name !== 'replica_drain';
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, i) => {
        const { worker } = await Worker.start(`c${i + 1}`, 'prime-client.js', ['--mode', 'rebind', '--target', balancer.data, ...(idempotent ? ['--idempotent'] : [])]);
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
    switch (name) {
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
    const p99 = (from: number, to: number) => {
      const h = histogram();
      for (const r of records) if (r.ok && r.start >= from && r.start < to) h.recordValue(Math.max(1, r.us));
      return h.totalCount > 0 ? h.getValueAtPercentile(99) : null;
    };
    const timeline: number[][] = [];
    for (let t = faultAt - opts.beforeMs; t < faultAt + opts.afterMs; t += 100) {
      const inWindow = records.filter((r) => r.end >= t && r.end < t + 100);
      timeline.push([Math.round(t - faultAt) / 1000, inWindow.filter((r) => r.ok).length * 10, inWindow.filter((r) => !r.ok).length * 10]);
    }
    return {
      calls: records.length,
      failed_calls: records.filter((r) => !r.ok).length,
      recovery_ms: recovery === null ? null : Math.round(recovery),
      p99_us_during: p99(faultAt, faultAt + 5000),
      p99_us_before: p99(faultAt - opts.beforeMs, faultAt),
      notes,
      timeline,
      errors,
    };
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
  }
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

function markdown(json: { scenarios: Record<string, ScenarioResult>; report_interval_ms: number }, command: string): string {
  return [
    '# Faults',
    '',
    `\`${command}\` — 4 replicas, 8 rebind clients at ${RATE} calls/s each (open loop), on-demand minimum_dispersion, report interval ${json.report_interval_ms} ms.`,
    '',
    '| scenario | calls | failed | recovery ms | p99 before µs | p99 during µs | what happened |',
    '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    ...Object.entries(json.scenarios).map(
      ([key, r]) => `| ${key} | ${r.calls} | ${r.failed_calls} | ${r.recovery_ms ?? 'never'} | ${r.p99_us_before ?? '-'} | ${r.p99_us_during ?? '-'} | ${r.notes} |`,
    ),
    '',
    'recovery: until every client has completed a successful call started after the fault (balancer_restart: until all 4 replicas are attached to the new balancer and have reported). p99 during: calls started in the 5 s after the fault.',
  ].join('\n');
}

async function main(opts: { quick?: boolean; out: string; scenarios?: string }): Promise<void> {
  const wanted = (opts.scenarios?.split(',') ?? [...SCENARIOS]) as Scenario[];
  const unknown = wanted.filter((w) => !SCENARIOS.includes(w));
  if (unknown.length > 0) throw new Error(`unknown scenario(s) ${unknown.join(', ')}; accepted: ${SCENARIOS.join(', ')}`);
  const timing = opts.quick ? { beforeMs: 2000, afterMs: 5000, reportIntervalMs: 500 } : { beforeMs: 3000, afterMs: 10_000, reportIntervalMs: 1000 };
  const tmp = mkdtempSync(path.join(tmpdir(), 'rebind-faults-'));
  const scenarios: Record<string, ScenarioResult> = {};
  const progress = new Progress('faults', wanted.length);
  for (const name of wanted) {
    say(`scenario ${name}`);
    scenarios[name] = await runScenario(name, timing, tmp);
    const r = scenarios[name]!;
    progress.tick(`${name} done`);
    say(`  calls ${r.calls}, failed ${r.failed_calls}, recovery ${r.recovery_ms} ms, p99 during ${r.p99_us_during} µs${r.errors.length ? `; errors: ${r.errors.join(' | ')}` : ''}`);
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

const program = new Command('bench:faults')
  .description('What clients see when a replica crashes, hangs, slows down or drains, or the balancer restarts.')
  .option('--quick', 'shorter scenarios (2 s before, 5 s after the fault, 500 ms reports)')
  .option('--scenarios <list>', `comma-separated subset of ${SCENARIOS.join(', ')}`)
  .option('--out <dir>', 'where to write faults.{json,md,svg}', RESULTS_DIR);

runBenchCommand(program, main);
