/**
 * Scenario files for the simulator: good ones round-trip, each bad field is
 * an error naming the field and its accepted range, the example files are
 * the built-in scenarios and run, and the command line exits with status 2
 * on an invalid file.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScenarioFile, parseScenarioFile, scenarioRuns, serializeScenarioFile } from '../../src/sim/scenario-file';
import { BUILTIN_SCENARIOS } from '../../src/sim/scenarios';
import { simulate } from '../../src/sim/simulator';

const ROOT = path.resolve(__dirname, '../..');
const EXAMPLES = path.join(ROOT, 'examples/sim');

/** A small valid scenario; each bad case below changes one field of it. */
const good = () => ({
  name: 'mine',
  durationMs: 20_000,
  seed: 5,
  group: { granularity: 'on-demand', strategy: { name: 'minimum_dispersion', params: {} }, reportIntervalMs: 500 },
  replicas: [{ name: 'a', speed: 2 }, { name: 'b', attachMs: 1000, detachMs: 15_000, speedChanges: [{ atMs: 5000, speed: 0.5 }] }],
  clients: [{ rate: 100, count: 3, startMs: 100, stopMs: 19_000, rateChanges: [{ atMs: 4000, rate: 0 }, { atMs: 6000, rate: 50 }], arrivals: 'poisson' }],
  switches: [{ atMs: 10_000, strategy: 'load_minimum' }, { atMs: 12_000, granularity: 'per-request' }],
});

describe('scenario files: good ones', () => {
  const goods: [string, unknown][] = [['good()', good()], ['minimal', { replicas: 1, clients: [{ rate: 1 }] }], ...Object.entries(BUILTIN_SCENARIOS)];
  it.each(goods)('%s parses and round-trips through serialize', (_name, raw) => {
    const a = parseScenarioFile(raw);
    if (!a.ok) throw new Error(a.errors.join('\n'));
    const b = parseScenarioFile(serializeScenarioFile(a.value));
    if (!b.ok) throw new Error(b.errors.join('\n'));
    expect(b.value).toEqual(a.value);
  });

  it('fills in the defaults: balancer group defaults, seed 7, 250 ms samples, 3 intervals + 60 s, one variant named after the group', () => {
    const r = parseScenarioFile({ replicas: 2, clients: [{ rate: 10 }] }, 'from-file');
    if (!r.ok) throw new Error(r.errors.join());
    expect(r.value).toMatchObject({ name: 'from-file', seed: 7, sampleMs: 250, durationMs: 63_000, initialBinding: 'balancer' });
    expect(r.value.variants.map((v) => v.name)).toEqual(['on_demand_minimum_dispersion']);
    expect(r.value.replicas).toEqual([
      { name: 'r1', attachMs: 0, speed: 1, speedChanges: [] },
      { name: 'r2', attachMs: 0, speed: 1, speedChanges: [] },
    ]);
    expect(r.value.clients).toEqual([{ count: 1, rate: 10, startMs: 0, rateChanges: [], arrivals: 'periodic', sets: true }]);
  });
});

type Edit = (s: Record<string, any>) => void;
const BAD: [string, Edit, string][] = [
  ['unknown top-level key', (s) => (s['replica'] = 3), 'replica is not a scenario setting (accepted: name, description, durationMs, seed, sampleMs, initialBinding, group, variants, replicas, clients, switches)'],
  ['name', (s) => (s['name'] = 'has space'), 'name is "has space"; it must be 1-64 letters, digits, . _ -, starting with a letter or digit'],
  ['durationMs', (s) => (s['durationMs'] = 0), 'durationMs is 0; it must be an integer >= 1 and <= 86400000 (ms)'],
  ['seed', (s) => (s['seed'] = 1.5), 'seed is 1.5; it must be an integer >= 1 and <= 4294967295'],
  ['sampleMs', (s) => (s['sampleMs'] = 5), 'sampleMs is 5; it must be an integer >= 10 and <= 60000 (ms)'],
  ['initialBinding', (s) => (s['initialBinding'] = 'random'), 'initialBinding is "random"; it must be one of balancer, round-robin'],
  ['group setting (balancer validation)', (s) => (s['group']['dampening'] = 1), 'group.dampening is 1; it must be a number >= 0 and < 1'],
  ['group strategy', (s) => (s['group']['strategy'] = 'fastest'), 'group.strategy.name is "fastest"; it must be one of'],
  ['group name not allowed', (s) => (s['group']['name'] = 'x'), 'group.name is not a group setting'],
  ['variant setting', (s) => (s['variants'] = [{ name: 'v', reportIntervalMs: 5 }]), 'variants[0].reportIntervalMs is 5; it must be an integer >= 10 and <= 600000 (ms)'],
  ['variant name twice', (s) => (s['variants'] = [{ name: 'v' }, { name: 'v' }]), 'variants[1].name "v" is listed twice'],
  ['replicas count', (s) => (s['replicas'] = 1001), 'replicas is 1001; it must be an integer >= 1 and <= 1000 (replicas)'],
  ['replicas missing', (s) => delete s['replicas'], 'replicas is missing; give a number (1-1000) or a list of { name, speed, attachMs, detachMs, speedChanges }'],
  ['replica name twice', (s) => (s['replicas'][1]['name'] = 'a'), 'replicas[1].name "a" is listed twice'],
  ['replica key', (s) => (s['replicas'][0]['weight'] = 1), 'replicas[0].weight is not a replica setting (accepted: name, speed, attachMs, detachMs, speedChanges)'],
  ['replica speed 0', (s) => (s['replicas'][0]['speed'] = 0), 'replicas[0].speed is 0; it must be a number > 0 and <= 1000 (relative speed; 1 serves 1000 calls/s)'],
  ['replica attachMs', (s) => (s['replicas'][0]['attachMs'] = 20_001), 'replicas[0].attachMs is 20001; it must be an integer >= 0 and <= 20000 (ms, durationMs)'],
  ['replica detachMs before attach', (s) => (s['replicas'][1]['detachMs'] = 1000), 'replicas[1].detachMs is 1000; it must be an integer > 1000 and <= 20000 (ms, after attachMs, up to durationMs)'],
  ['speed change order', (s) => s['replicas'][1]['speedChanges'].push({ atMs: 5000, speed: 1 }), 'replicas[1].speedChanges[1].atMs is 5000; changes must be in strictly ascending atMs (the one before is at 5000)'],
  ['speed change value', (s) => (s['replicas'][1]['speedChanges'][0]['speed'] = -1), 'replicas[1].speedChanges[0].speed is -1; it must be a number > 0 and <= 1000'],
  ['clients missing', (s) => (s['clients'] = []), 'clients is missing; give a list of { rate, count, startMs, stopMs, rateChanges, arrivals, sets }'],
  ['client rate', (s) => (s['clients'][0]['rate'] = 100_001), 'clients[0].rate is 100001; it must be a number >= 0 and <= 100000 (calls/s)'],
  ['client rate missing', (s) => delete s['clients'][0]['rate'], 'clients[0].rate is missing; it must be a number >= 0 and <= 100000 (calls/s)'],
  ['client count', (s) => (s['clients'][0]['count'] = 0), 'clients[0].count is 0; it must be an integer >= 1 and <= 10000 (clients)'],
  ['clients in all', (s) => (s['clients'] = [{ rate: 1, count: 6000 }, { rate: 1, count: 6000 }]), 'clients add up to 12000 clients (with count); at most 10000 are accepted'],
  ['client stopMs', (s) => (s['clients'][0]['stopMs'] = 100), 'clients[0].stopMs is 100; it must be an integer > 100 and <= 20000 (ms, after startMs, up to durationMs)'],
  ['client rate change', (s) => (s['clients'][0]['rateChanges'][1] = { atMs: 6000, rate: 'fast' }), 'clients[0].rateChanges[1].rate is "fast"; it must be a number >= 0 and <= 100000 (calls/s)'],
  ['rate change key', (s) => (s['clients'][0]['rateChanges'][0]['at'] = 1), 'clients[0].rateChanges[0].at is not a rate change field (accepted: atMs, rate)'],
  ['client arrivals', (s) => (s['clients'][0]['arrivals'] = 'bursty'), 'clients[0].arrivals is "bursty"; it must be one of periodic, poisson'],
  ['client sets', (s) => (s['clients'][0]['sets'] = 'yes'), 'clients[0].sets is "yes"; it must be true or false (whether the clients understand weighted bindings)'],
  ['calls per variant', (s) => (s['clients'] = [{ rate: 100_000, count: 10 }]), 'clients send up to 20000000 calls in durationMs 20000 (Σ count × highest rate × duration); at most 10000000 per variant are accepted'],
  ['switch changes nothing', (s) => (s['switches'] = [{ atMs: 1 }]), 'switches[0] changes nothing; give strategy (a name or { name, params }) and/or granularity'],
  ['switch key', (s) => (s['switches'][0]['dampening'] = 0.1), 'switches[0].dampening is not a switch setting (accepted: atMs, strategy, granularity)'],
  ['switch atMs', (s) => (s['switches'][0]['atMs'] = -1), 'switches[0].atMs is -1; it must be an integer >= 0 and <= 20000 (ms, durationMs)'],
  ['switch strategy params', (s) => (s['switches'][0]['strategy'] = { name: 'minimum_dispersion', params: { nope: 1 } }), 'switches[0].strategy.params'],
  ['switch granularity', (s) => (s['switches'][1]['granularity'] = 'per-call'), 'switches[1].granularity is "per-call"; it must be one of per-session, per-request, on-demand'],
];

describe('scenario files: each bad field is an error naming it and its accepted range', () => {
  it.each(BAD)('%s', (_name, edit, message) => {
    const raw = good();
    edit(raw as Record<string, any>);
    const r = parseScenarioFile(raw);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    // Exactly one problem, and it is this one.
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain(message);
  });

  it('reports every bad field at once', () => {
    const r = parseScenarioFile({ seed: 0, replicas: 0, clients: [{ rate: -1 }] });
    expect(r.ok ? [] : r.errors.map((e) => e.split(' ')[0])).toEqual(['seed', 'replicas', 'clients[0].rate']);
  });
});

describe('scenario files: the examples are the built-in scenarios, and run', () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml'));

  it('there is one example file per built-in scenario', () => {
    expect(files.map((f) => f.replace('.yaml', '')).sort()).toEqual(Object.keys(BUILTIN_SCENARIOS).sort());
  });

  it.each(files)('%s parses to the built-in scenario and every variant runs in well under a second of CPU', (file) => {
    const fromFile = loadScenarioFile(path.join(EXAMPLES, file));
    if (!fromFile.ok) throw new Error(fromFile.errors.join('\n'));
    const builtin = parseScenarioFile(BUILTIN_SCENARIOS[file.replace('.yaml', '')]);
    if (!builtin.ok) throw new Error(builtin.errors.join('\n'));
    expect(fromFile.value).toEqual(builtin.value);
    const before = process.cpuUsage();
    for (const run of scenarioRuns(fromFile.value)) {
      const r = simulate(run.scenario);
      expect(r.latency.calls).toBeGreaterThan(1000);
      expect(r.unservedCalls).toBe(0);
    }
    const cpu = process.cpuUsage(before);
    // The brief is < 1 s a scenario; measured 0.003-0.3 s. CPU time, not wall time, so a busy machine does not make it flaky.
    expect((cpu.user + cpu.system) / 1e6).toBeLessThan(1);
  });
});

describe('npm run simulate -- --scenario-file', () => {
  const tsx = path.join(ROOT, 'node_modules/.bin/tsx');
  const cli = path.join(ROOT, 'src/sim/cli.ts');

  it('exits with status 2 and names every bad field of an invalid file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rebind-sim-'));
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'replicas: 0\nclients: [{ rate: 10, cnt: 2 }]\ngroup: { dampening: 1 }\n');
    const r = spawnSync(tsx, [cli, '--scenario-file', file], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('invalid scenario: group.dampening is 1; it must be a number >= 0 and < 1');
    expect(r.stderr).toContain('invalid scenario: replicas is 0; it must be an integer >= 1 and <= 1000 (replicas)');
    expect(r.stderr).toContain('invalid scenario: clients[0].cnt is not a client setting');
  });

  it('runs a JSON file and prints both tables', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'rebind-sim-'));
    const file = path.join(dir, 'two.json');
    writeFileSync(file, JSON.stringify({ durationMs: 5000, replicas: 2, clients: [{ rate: 20, count: 2 }] }));
    const r = spawnSync(tsx, [cli, '--scenario-file', file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('scenario two, report interval 1000 ms, seed 7, replicas r1 r2');
    expect(r.stdout).toMatch(/on_demand_minimum_dispersion\s+200\s+1\.0\s+1\.0\s+1\.0\s+0\s+1\/1/);
  });
});
