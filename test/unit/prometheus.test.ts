/**
 * The balancer's /metrics exposition without sockets: per-member series
 * bounded by limits.maxMemberSeries (the rest counted, a warning at most per
 * minute), the text valid Prometheus exposition line by line, and the
 * counters of bounds that bite (ledger evictions, the caller-identity cache,
 * the client index) exported and moving when their event happens.
 */
import { describe, expect, it } from 'vitest';
import pino from 'pino';
import { parseBalancerConfig } from '../../src/balancer/config';
import { MAX_RECENT_BINDS, MAX_REMEMBERED_BINDINGS } from '../../src/balancer/ledger';
import { Member, type AdvisorySink } from '../../src/balancer/member';
import { balancerMetrics, escapeLabelValue } from '../../src/balancer/prometheus';
import { Registry } from '../../src/balancer/registry';
import { callerCacheStats, identifyCaller } from '../../src/common/wire';
import type { LoadReport__Output } from '../../src/generated/rebind/v1/LoadReport';

const log = pino({ level: 'silent' });

const sink: AdvisorySink = { sendAdvisory: () => true, close: () => undefined };

/** A registry with groups of the given sizes, each member reported once with `clientsPerMember` top clients. */
function setup(sizes: Record<string, number>, clientsPerMember = 0) {
  const parsed = parseBalancerConfig({ groups: Object.keys(sizes).map((name) => ({ name, reportIntervalMs: 100, maxMembers: 100_000 })) });
  if (!parsed.ok) throw new Error(parsed.errors.join());
  const registry = new Registry(parsed.value, log, () => 0.5);
  let n = 0;
  for (const [name, size] of Object.entries(sizes)) {
    const group = registry.groups.get(name)!;
    for (let i = 0; i < size; i++, n++) {
      const member = registry.attach({ protocolVersion: 1, group: name, address: `10.0.${n >> 8}.${n & 255}:7000`, methods: [{ path: `/${name}.S/M`, kind: 'UNARY' }], replicaId: '', resumeSecret: '' }, sink, 0);
      if (!(member instanceof Member)) throw new Error(member.message);
      const topClients = Array.from({ length: clientsPerMember }, (_, k) => ({ clientId: `client-${n}-${k}`, callsPerS: 1, sets: false }));
      group.applyReport(member, report(topClients), 100);
    }
  }
  return registry;
}

function report(topClients: LoadReport__Output['topClients']): LoadReport__Output {
  return { seq: 1, intervalMs: 100, callsPerS: topClients.length, inFlight: 0, latencyMs: 1, eventLoopUtilization: 0, cpuCores: 0, custom: 0, hasCustom: false, topClients, otherCallsPerS: 0, forwards: 0, draining: false, clientCount: topClients.length } as LoadReport__Output;
}

const PER_MEMBER = ['rebind_member_load', 'rebind_member_dampened_load', 'rebind_member_calls_per_second', 'rebind_member_in_flight', 'rebind_member_clients', 'rebind_member_last_report_age_seconds'];

/** Sample lines of one metric family. */
const samples = (text: string, name: string) => text.split('\n').filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
/** The value of one sample line, by its name and labels as written. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/**
 * Prometheus text exposition format 0.0.4, line by line: comments (HELP and
 * TYPE, once per family, TYPE before its samples), samples with well-formed
 * names, quoted and escaped label values, and a float value (NaN in any
 * case, as Prometheus's parser takes it: prom-client writes "Nan"); each
 * series once.
 */
function expectValidExposition(text: string): void {
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
  const sample = new RegExp(`^(${NAME})(\\{(?:${LABEL}(?:,${LABEL})*)?,?\\})? (-?[0-9.eE+-]+|[Nn]a[Nn]|[+-]Inf)$`);
  const help = new RegExp(`^# HELP (${NAME}) .*$`);
  const type = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`);
  expect(text.endsWith('\n')).toBe(true);
  const typed = new Set<string>();
  const helped = new Set<string>();
  const series = new Set<string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m: RegExpExecArray | null;
    if ((m = help.exec(line)) !== null) {
      expect(helped.has(m[1]!), `HELP twice for ${m[1]}`).toBe(false);
      helped.add(m[1]!);
    } else if ((m = type.exec(line)) !== null) {
      expect(typed.has(m[1]!), `TYPE twice for ${m[1]}`).toBe(false);
      typed.add(m[1]!);
    } else {
      m = sample.exec(line);
      expect(m, `not a valid sample line: ${line}`).not.toBeNull();
      const family = m![1]!.replace(/_(bucket|sum|count)$/, '');
      expect(typed.has(m![1]!) || typed.has(family), `sample before its TYPE: ${line}`).toBe(true);
      const key = line.slice(0, line.lastIndexOf(' '));
      expect(series.has(key), `series twice: ${key}`).toBe(false);
      series.add(key);
    }
  }
}

describe('per-member series are bounded by limits.maxMemberSeries', () => {
  it('25 members, cap 10: each per-member family has 10 series, the omitted gauge says 15, one warning per minute', async () => {
    const registry = setup({ g: 25 });
    const warnings: unknown[] = [];
    let now = 1_000_000;
    const metrics = balancerMetrics({ registry, refusals: new Map() }, { processMetrics: false, maxMemberSeries: 10, nowMs: () => now, log: { warn: (...args: unknown[]) => warnings.push(args) } });
    const text = await metrics.metrics();
    expectValidExposition(text);
    for (const name of PER_MEMBER) expect(samples(text, name), name).toHaveLength(10);
    expect(value(text, 'rebind_member_series_omitted{group="g"}')).toBe(15);
    // The members shown are the first attached, their labels as before.
    const first = [...registry.groups.get('g')!.members.values()][0]!;
    expect(value(text, `rebind_member_clients{group="g",member="${first.id}",address="10.0.0.0:7000"}`)).toBe(0);
    now += 59_999;
    await metrics.metrics();
    expect(warnings).toHaveLength(1);
    now += 1;
    await metrics.metrics();
    expect(warnings).toHaveLength(2);
    // One family alone (prom-client's per-metric read) is bounded too.
    expect((await metrics.getSingleMetricAsString('rebind_member_load')).split('\n').filter((l) => !l.startsWith('#'))).toHaveLength(10);
  });

  it('the cap is shared by the groups, in order: 8 + 8 members, cap 10: all of the first group, 2 of the second', async () => {
    const registry = setup({ a: 8, b: 8 });
    // With prom-client's process metrics: the whole exposition, theirs and ours, is valid.
    const text = await balancerMetrics({ registry, refusals: new Map() }, { processMetrics: true, maxMemberSeries: 10 }).metrics();
    expect(text).toContain('process_cpu_user_seconds_total');
    // Not the default metrics that list every libuv handle at each scrape (O(connections)).
    expect(text).not.toContain('nodejs_active_handles');
    if (process.platform === 'linux') expect(value(text, 'process_open_fds')).toBeGreaterThan(0);
    expectValidExposition(text);
    expect(samples(text, 'rebind_member_load').filter((l) => l.includes('group="a"'))).toHaveLength(8);
    expect(samples(text, 'rebind_member_load').filter((l) => l.includes('group="b"'))).toHaveLength(2);
    expect(value(text, 'rebind_member_series_omitted{group="a"}')).toBe(0);
    expect(value(text, 'rebind_member_series_omitted{group="b"}')).toBe(6);
  });

  it('by default at most 1,000 members have series: 1,500 members leave 500 out, and the scrape writes 6,000 per-member lines, not 9,000', async () => {
    const registry = setup({ g: 1500 });
    const text = await balancerMetrics({ registry, refusals: new Map() }, { processMetrics: false }).metrics();
    expectValidExposition(text);
    for (const name of PER_MEMBER) expect(samples(text, name), name).toHaveLength(1000);
    expect(value(text, 'rebind_member_series_omitted{group="g"}')).toBe(500);
  });

  it('label values are escaped as the text format asks (backslash, double quote, newline)', () => {
    expect(escapeLabelValue('odd"gr\\oup\nname')).toBe('odd\\"gr\\\\oup\\nname');
    expect(escapeLabelValue('10.0.0.1:7000')).toBe('10.0.0.1:7000');
  });
});

describe('counters of bounds that bite are on /metrics', () => {
  it('ledger evictions: remembered bindings and fresh recent binds forgotten beyond their bounds', async () => {
    const registry = setup({ g: 2 });
    const group = registry.groups.get('g')!;
    const metrics = balancerMetrics({ registry, refusals: new Map() }, { processMetrics: false });
    const before = await metrics.metrics();
    expect(value(before, 'rebind_ledger_bindings_evicted_total{group="g"}')).toBe(0);
    expect(value(before, 'rebind_ledger_recent_binds_evicted_total{group="g"}')).toBe(0);
    const member = [...group.members.keys()][0]!;
    // All within one report interval: every bind is fresh.
    for (let c = 0; c <= MAX_REMEMBERED_BINDINGS; c++) group.ledger.bound(`c-${c}`, member, 1000);
    const after = await metrics.metrics();
    expectValidExposition(after);
    expect(value(after, 'rebind_ledger_bindings_evicted_total{group="g"}')).toBe(1);
    expect(value(after, 'rebind_ledger_recent_binds_evicted_total{group="g"}')).toBe(MAX_REMEMBERED_BINDINGS + 1 - MAX_RECENT_BINDS);
    // The bindings-size gauge, kept as bindings change, counts what the ledger holds.
    expect(value(after, 'rebind_bindings{group="g",size="1"}')).toBe(MAX_REMEMBERED_BINDINGS);
  });

  it("the caller-identity cache's hits, misses, clears and size", async () => {
    const registry = setup({ g: 1 });
    const metrics = balancerMetrics({ registry, refusals: new Map() }, { processMetrics: false });
    const read = async () => {
      const text = await metrics.metrics();
      return {
        hits: value(text, 'rebind_caller_cache_lookups_total{result="hit"}')!,
        misses: value(text, 'rebind_caller_cache_lookups_total{result="miss"}')!,
        clears: value(text, 'rebind_caller_cache_clears_total')!,
        entries: value(text, 'rebind_caller_cache_entries')!,
      };
    };
    const before = await read();
    expect(before.hits).toBe(callerCacheStats().hits);
    const ua = `plain-client/${Math.random()}`;
    identifyCaller(ua);
    identifyCaller(ua);
    const after = await read();
    expect(after.misses - before.misses).toBe(1);
    expect(after.hits - before.hits).toBe(1);
    for (let i = 0; i <= callerCacheStats().limit; i++) identifyCaller(`flood-${i}-${Math.random()}`);
    const flooded = await read();
    expect(flooded.clears - after.clears).toBe(1);
    expect(flooded.entries).toBe(callerCacheStats().size);
  });

  it("each group's client index: distinct clients with an entry on some member", async () => {
    const registry = setup({ a: 3, b: 1 }, 4);
    const text = await balancerMetrics({ registry, refusals: new Map() }, { processMetrics: false }).metrics();
    expectValidExposition(text);
    expect(value(text, 'rebind_group_indexed_clients{group="a"}')).toBe(12);
    expect(value(text, 'rebind_group_indexed_clients{group="b"}')).toBe(4);
  });
});
