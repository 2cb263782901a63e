/**
 * CI smoke test of the benchmarks (overhead, faults and scale; split in two files so that
 * vitest runs them side by side): their --quick modes run to the end and
 * write complete result files (the figures themselves are not checked: CI
 * machines are shared and noisy).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../support/build-once';
import { benchRunner } from '../support/bench-smoke';

const { bench, read } = benchRunner();

beforeAll(() => {
  buildOnce();
}, 60_000);

describe('benchmark smoke (--quick)', () => {
  it('overhead writes each variant asked for, measured or skipped with a reason', async () => {
    // Seven of the eleven variants keep the suite short (the attached-and-bound and grpc-js peers are
    // like direct here); the full run measures them all.
    // 2,000 calls in 2 rounds per variant (the --quick size halved): the smoke test checks that every variant runs and is accounted for, not its figures.
    const r = await bench('overhead', '--variants', 'direct,per_request,per_request_direct,peer_nginx,xds_node,direct_python,xds_python', '--iterations', '2000', '--rounds', '2');
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const json = JSON.parse(read('overhead.json'));
    expect(json.iterations).toBeGreaterThan(0);
    expect(json.machine).toMatchObject({ cpus: expect.any(Number), model: expect.any(String), node: expect.any(String) });
    const keys = ['direct', 'per_request', 'per_request_direct', 'peer_nginx', 'xds_node', 'direct_python', 'xds_python'];
    expect(Object.keys(json.variants)).toEqual(keys);
    for (const key of keys) {
      const v = json.variants[key];
      if ('skipped' in v) {
        expect(typeof v.skipped).toBe('string');
        expect(v.skipped.length).toBeGreaterThan(10);
        continue;
      }
      for (const field of ['p50_us', 'p90_us', 'p99_us', 'mean_us', 'stddev_us', 'throughput_rps']) expect(v[field], `${key}.${field}`).toBeGreaterThan(0);
      expect(v.errors).toBe(0);
    }
    // How the calls reached the replica: per_request's (a plain client) all relayed;
    // per_request_direct's (a rebind client bound to every member) straight from the client.
    const served = (key: string) => json.variants[key].served as { direct: number; proxied: number };
    const perVariant = json.iterations + json.warmup;
    expect(served('per_request')).toEqual({ direct: 0, proxied: perVariant });
    expect(served('per_request_direct')).toEqual({ direct: perVariant, proxied: 0 });
    expect(json.variants.direct.served).toBeUndefined();
    // xDS clients (Node, Python) call the replica straight from their EDS assignment; each ratio uses its own language's direct.
    expect(served('xds_node')).toEqual({ direct: perVariant, proxied: 0 });
    expect(served('xds_python')).toEqual({ direct: perVariant, proxied: 0 });
    expect(json.variants.xds_python.baseline).toBe('direct_python');
    expect(json.variants.xds_node.baseline).toBe('direct');
    expect(read('overhead.md')).toContain('| direct |');
    expect(read('overhead.md')).toContain('| per_request_direct |');
    expect(read('overhead.svg')).toMatch(/^<svg[\s\S]*<\/svg>$/);
  }, 240_000);
  it('faults runs a drain and accounts for every call', async () => {
    // One of the six scenarios keeps the suite short (the drain: no call may fail, idempotent or not);
    // the full run covers all of them, and test/integration/reliability.test.ts and ha-acceptance.test.ts the faults themselves.
    const r = await bench('faults', '--scenarios', 'replica_drain', '--before-ms', '2000', '--after-ms', '3000');
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const json = JSON.parse(read('faults.json'));
    expect(Object.keys(json.scenarios)).toEqual(['replica_drain']);
    const scenario = json.scenarios.replica_drain as Record<string, number | null>;
    // 8 clients x 50 calls/s for 5 s, open loop: about 2,000 calls, none failed.
    expect(scenario['calls']).toBeGreaterThan(1500);
    expect(scenario['failed_calls']).toBe(0);
    // Every client completed a call started after the drain (null would mean one never did).
    expect(typeof scenario['recovery_ms']).toBe('number');
    expect(scenario['p99_us_during']).toBeGreaterThan(0);
    expect(read('faults.md')).toContain('| replica_drain |');
    expect(read('faults.svg')).toMatch(/^<svg[\s\S]*<\/svg>$/);
  }, 240_000);
  it('scale measures the balancer alone: pinned (or says why not), each point with its generators\' own load, memory with clients and xDS streams held', async () => {
    // --quick: 20 replicas, 0 and 1,000 binds/s for 1.5 s, then 500 rebind clients and 50 xDS streams held (about 15 s).
    const r = await bench('scale');
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const json = JSON.parse(read('scale.json'));
    expect(json.machine).toMatchObject({ cpus: expect.any(Number), model: expect.any(String), node: expect.any(String) });
    if (json.pinning.pinned) expect(json.pinning).toMatchObject({ balancer_cpu: 0, generators_cpu: 1, why_not: null });
    else expect(json.pinning.why_not).toMatch(/taskset|core/);
    expect(json.points.map((p: { offered_binds_per_s: number }) => p.offered_binds_per_s)).toEqual([0, 1000]);
    const [idle, busy] = json.points;
    // The simulated replicas report about once a second each; the idle point's balancer CPU is theirs.
    expect(idle.reports_per_s).toBeGreaterThan(15);
    expect(idle.balancer_cpu_pct).toBeGreaterThan(0);
    // Every bind the binder saw answered with a forward is one the balancer counted (distinct ids: no cache hits).
    expect(busy.binds_ok).toBeGreaterThan(1200);
    expect(busy.binds_counted_by_balancer).toBe(busy.binds_ok);
    expect(busy.bind_p99_us).toBeGreaterThan(0);
    // The generators' own load is measured, and a generator-limited point is never the balancer's saturation.
    for (const field of ['binder_cpu_pct', 'generators_cpu_pct']) expect(busy[field], field).toBeGreaterThan(0);
    expect(busy.generators_cpu_pct).toBeCloseTo(busy.binder_cpu_pct + busy.replicas_cpu_pct, 0);
    expect(typeof busy.binder_eld_p99_ms).toBe('number');
    // How long the balancer waited for its core (other processes on it) is stated per point.
    expect(typeof busy.balancer_runqueue_wait_pct).toBe('number');
    expect(typeof busy.generator_limited).toBe('boolean');
    for (const p of json.points) if (p.generator_limited || p.core_contended) expect(p.saturated).toBe(false);
    // Memory: the clients are in the ledger (300 warm-up binds + 200 more), the xDS streams at the balancer and in the ledger too.
    expect(json.memory.map((m: { step: string }) => m.step)).toEqual(['start', 'rebind', 'xds']);
    expect(json.memory[1]).toMatchObject({ rebind_clients: 500, ledger_bindings: 500 });
    expect(json.memory[2]).toMatchObject({ xds_streams: 50, balancer_xds_streams: 50, ledger_bindings: 550 });
    expect(json.derived.per_replicas[0].generator_cpu_us_per_bind).toBeGreaterThan(0);
    // The attachment is recorded: 20 replicas under the default missedReports, none dropped, the balancer's loop delay measured.
    expect(json.derived.per_replicas[0].attachment).toMatchObject({ replicas: 20, missed_reports: 3, silence_drops: 0, silence_drops_never_silent: 0 });
    expect(json.derived.per_replicas[0].attachment.balancer_loop_lag_max_ms).toBeGreaterThan(0);
    expect(read('scale.md')).toContain('| dropped for silence while attaching |');
    expect(read('scale.md')).toContain(json.pinning.pinned ? '**Pinning:**' : '**Not pinned**');
    expect(read('scale.md')).toContain('generators CPU %');
    expect(read('scale.svg')).toMatch(/^<svg[\s\S]*<\/svg>$/);
  }, 120_000);
});
