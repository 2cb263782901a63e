/**
 * `npm run simulate -- --scenario paper` or `--scenario-file my.yaml`: runs
 * a scenario in the deterministic simulator for each of its variants and
 * prints how each balanced, and the calls' latency and queues (or --json
 * for the full results). An invalid scenario file exits with status 2, as
 * an invalid balancer configuration does.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { parseScenarioFile, readScenarioRaw, scenarioRuns, type ScenarioFile } from './scenario-file';
import { BUILTIN_SCENARIO_NAMES, BUILTIN_SCENARIOS } from './scenarios';
import { simulate, type SimResult } from './simulator';

/** Exit status for an invalid scenario (file or overrides), as for an invalid balancer configuration. */
const EXIT_INVALID_SCENARIO = 2;

function positiveInt(name: string) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

function line(key: string, r: SimResult, intervals: number, width: number): string {
  const loads = r.intervalLoads.slice(0, intervals).map((l) => l.map((x) => Math.round(x)).join('/'));
  return [
    key.padEnd(width),
    String(r.rebinds).padStart(8),
    String(r.convergenceS ?? '-').padStart(10),
    r.steady.max_over_mean.toFixed(3).padStart(9),
    r.steady.cv.toFixed(3).padStart(7),
    '  ' + loads.join('  '),
  ].join(' ');
}

function latencyLine(key: string, r: SimResult, width: number): string {
  const ms = (x: number) => (Number.isNaN(x) ? '-' : x.toFixed(1)).padStart(9);
  return [key.padEnd(width), String(r.latency.calls).padStart(8), ms(r.latency.p50Ms), ms(r.latency.p99Ms), ms(r.latency.maxMs), String(r.unservedCalls).padStart(8), '  ' + r.maxInFlight.join('/')].join(' ');
}

interface Options {
  scenario: string;
  scenarioFile?: string;
  interval?: number;
  seed?: number;
  duration?: number;
  strategies?: string;
  intervals: number;
  json?: boolean;
}

const program = new Command('simulate')
  .description('Run a load-balancing scenario on virtual time with the real strategy and analyzer code.')
  .addOption(new Option('--scenario <name>', 'built-in scenario to run').choices(BUILTIN_SCENARIO_NAMES).default('paper'))
  .addOption(new Option('--scenario-file <file>', 'your own scenario (YAML or JSON; README "Scenario files")').conflicts('scenario'))
  .option('--interval <ms>', "report interval in ms (default: the scenario's, 1000 for the built-ins)", positiveInt('--interval'))
  .option('--seed <n>', "random seed (default: the scenario's, 7 for paper)", positiveInt('--seed'))
  .option('--duration <s>', "simulated seconds (default: the scenario's, else 3 intervals + 60 s)", positiveInt('--duration'))
  .option('--strategies <list>', 'comma-separated variant keys (default: all)')
  .option('--intervals <n>', 'how many intervals of per-replica load to print', positiveInt('--intervals'), 6)
  .option('--json', 'print the full results as JSON')
  .action((opts: Options) => {
    try {
      run(opts);
    } catch (err) {
      program.error((err as Error).message);
    }
  });

/** The raw scenario object: a built-in, or the file's content. */
function rawScenario(opts: Options): { raw: unknown; defaultName: string } {
  if (opts.scenarioFile === undefined) return { raw: structuredClone(BUILTIN_SCENARIOS[opts.scenario]!), defaultName: opts.scenario };
  const read = readScenarioRaw(opts.scenarioFile);
  return read.ok ? read.value : invalid(read.errors);
}

function invalid(errors: string[]): never {
  for (const e of errors) console.error(`invalid scenario: ${e}`);
  process.exit(EXIT_INVALID_SCENARIO);
}

/** The command line's --interval/--seed/--duration win over the scenario's own values (and are validated with them). */
function applyOverrides(raw: unknown, opts: Options): void {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return;
  const r = raw as Record<string, unknown>;
  if (opts.seed !== undefined) r['seed'] = opts.seed;
  if (opts.duration !== undefined) r['durationMs'] = opts.duration * 1000;
  if (opts.interval !== undefined) {
    const group = typeof r['group'] === 'object' && r['group'] !== null ? (r['group'] as Record<string, unknown>) : {};
    r['group'] = { ...group, reportIntervalMs: opts.interval };
    if (Array.isArray(r['variants'])) for (const v of r['variants']) if (typeof v === 'object' && v !== null && 'reportIntervalMs' in v) v['reportIntervalMs'] = opts.interval;
  }
}

function run(opts: Options): void {
  const { raw, defaultName } = rawScenario(opts);
  applyOverrides(raw, opts);
  const parsed = parseScenarioFile(raw, defaultName);
  if (!parsed.ok) invalid(parsed.errors);
  const scenario: ScenarioFile = parsed.value;
  let runs = scenarioRuns(scenario);
  const wanted = opts.strategies?.split(',').map((s) => s.trim());
  if (wanted !== undefined) {
    const unknown = wanted.filter((w) => !runs.some((v) => v.key === w));
    if (unknown.length > 0) program.error(`unknown variant(s) ${unknown.join(', ')}; accepted: ${runs.map((v) => v.key).join(', ')}`);
    runs = runs.filter((v) => wanted.includes(v.key));
  }
  const results: Record<string, SimResult> = {};
  for (const v of runs) results[v.key] = simulate(v.scenario);
  if (opts.json) {
    console.log(JSON.stringify(results));
    return;
  }
  const first = Object.values(results)[0]!;
  // 30 columns, as always, unless a variant's name is longer.
  const width = Math.max(30, ...Object.keys(results).map((k) => k.length));
  console.log(`scenario ${scenario.name}, report interval ${first.reportIntervalMs} ms, seed ${scenario.seed}, replicas ${first.replicas.join(' ')}`);
  console.log(`${'variant'.padEnd(width)} ${'re-binds'.padStart(8)} ${'converge s'.padStart(10)} ${'max/mean'.padStart(9)} ${'cv'.padStart(7)}   load per replica, calls/s, interval by interval`);
  for (const [key, r] of Object.entries(results)) console.log(line(key, r, opts.intervals, width));
  console.log('converge s: time from which max/mean stays <= 1.10; max/mean and cv: over the second half of the run.');
  console.log('');
  console.log(`${'variant'.padEnd(width)} ${'calls'.padStart(8)} ${'p50 ms'.padStart(9)} ${'p99 ms'.padStart(9)} ${'max ms'.padStart(9)} ${'unserved'.padStart(8)}   max calls in flight per replica`);
  for (const [key, r] of Object.entries(results)) console.log(latencyLine(key, r, width));
  console.log('latency: queue wait + service (FIFO, one server per replica, 1 ms per call at speed 1) of every call a replica accepted.');
}

program.parse();
