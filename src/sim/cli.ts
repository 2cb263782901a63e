/**
 * `npm run simulate -- --scenario paper`: runs a scenario in the
 * deterministic simulator for each strategy variant and prints how each
 * balanced (or --json for the full results).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { lateJoinerScenario, paperScenario, PAPER_VARIANTS } from './scenarios';
import { simulate, type SimResult } from './simulator';

function positiveInt(name: string) {
  return (value: string) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got "${value}"`);
    return n;
  };
}

function line(key: string, r: SimResult, intervals: number): string {
  const loads = r.intervalLoads.slice(0, intervals).map((l) => l.map((x) => Math.round(x)).join('/'));
  return [
    key.padEnd(30),
    String(r.rebinds).padStart(8),
    String(r.convergenceS ?? '-').padStart(10),
    r.steady.max_over_mean.toFixed(3).padStart(9),
    r.steady.cv.toFixed(3).padStart(7),
    '  ' + loads.join('  '),
  ].join(' ');
}

const program = new Command('simulate')
  .description('Run a load-balancing scenario on virtual time with the real strategy and analyzer code.')
  .addOption(new Option('--scenario <name>', 'scenario to run').choices(['paper', 'late-joiner']).default('paper'))
  .option('--interval <ms>', 'report interval in ms', positiveInt('--interval'), 1000)
  .option('--seed <n>', 'random seed', positiveInt('--seed'), 7)
  .option('--duration <s>', 'simulated seconds (default: 3 intervals + 60 s)', positiveInt('--duration'))
  .option('--strategies <list>', 'comma-separated variant keys (default: all)')
  .option('--intervals <n>', 'how many intervals of per-replica load to print', positiveInt('--intervals'), 6)
  .option('--json', 'print the full results as JSON')
  .action((opts: { scenario: string; interval: number; seed: number; duration?: number; strategies?: string; intervals: number; json?: boolean }) => {
    try {
      run(opts);
    } catch (err) {
      program.error((err as Error).message);
    }
  });

function run(opts: { scenario: string; interval: number; seed: number; duration?: number; strategies?: string; intervals: number; json?: boolean }): void {
    const results: Record<string, SimResult> = {};
    if (opts.scenario === 'paper') {
      const wanted = opts.strategies?.split(',').map((s) => s.trim());
      const unknown = wanted?.filter((w) => !PAPER_VARIANTS.some((v) => v.key === w)) ?? [];
      if (unknown.length > 0) {
        program.error(`unknown variant(s) ${unknown.join(', ')}; accepted: ${PAPER_VARIANTS.map((v) => v.key).join(', ')}`);
      }
      for (const v of PAPER_VARIANTS.filter((x) => !wanted || wanted.includes(x.key))) {
        results[v.key] = simulate(paperScenario(v, { reportIntervalMs: opts.interval, seed: opts.seed, ...(opts.duration ? { durationMs: opts.duration * 1000 } : {}) }));
      }
    } else {
      results['on_demand_minimum_dispersion'] = simulate(lateJoinerScenario());
    }
    if (opts.json) {
      console.log(JSON.stringify(results));
      return;
    }
    const first = Object.values(results)[0]!;
    console.log(`scenario ${opts.scenario}, report interval ${first.reportIntervalMs} ms, seed ${opts.seed}, replicas ${first.replicas.join(' ')}`);
    console.log(`${'variant'.padEnd(30)} ${'re-binds'.padStart(8)} ${'converge s'.padStart(10)} ${'max/mean'.padStart(9)} ${'cv'.padStart(7)}   load per replica, calls/s, interval by interval`);
    for (const [key, r] of Object.entries(results)) console.log(line(key, r, opts.intervals));
    console.log('converge s: time from which max/mean stays <= 1.10; max/mean and cv: over the second half of the run.');
}

program.parse();
