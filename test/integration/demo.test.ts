/**
 * `npm run demo` (shortened): separate processes, the JSON summary, and no
 * process left behind, whether the demo ends by itself or is killed.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../support/build-once';
import { sleep, waitFor } from '../support/cluster';

const root = path.join(__dirname, '../..');
const demo = path.join(root, 'dist/examples/stock-trading/demo.js');

/** PIDs of rebind CLI processes started from the build (the demo's children). */
function cliProcesses(): number[] {
  try {
    return execFileSync('pgrep', ['-f', path.join(root, 'dist/src/cli/main.js')], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

beforeAll(() => {
  // The demo runs the compiled code; make sure it is this tree's.
  buildOnce();
}, 60_000);

describe('npm run demo', () => {
  it('ends by itself, prints the summary as one JSON line, and leaves no process behind', async () => {
    expect(cliProcesses()).toEqual([]);
    const started = Date.now();
    const { stdout, code } = await new Promise<{ stdout: string; code: number }>((resolve) => {
      execFile(process.execPath, [demo, '--duration', '14', '--json'], { encoding: 'utf8', timeout: 60_000 }, (err, out) =>
        resolve({ stdout: out, code: err ? 1 : 0 }),
      );
    });
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(14_000 + 15_000);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    const { summary } = JSON.parse(lines[0]!);
    console.log('demo summary:', lines[0]);
    expect(summary.failed_calls).toBe(0);
    expect(summary.per_session.max_over_mean).toBeGreaterThan(1.2);
    expect(summary.on_demand.max_over_mean).toBeLessThanOrEqual(1.15);
    expect(summary.on_demand.rebinds).toBeGreaterThan(0);
    expect(cliProcesses()).toEqual([]);
  });

  it('killed with SIGKILL, its children notice and exit', async () => {
    const child = spawn(process.execPath, [demo, '--duration', '60'], { stdio: 'ignore' });
    await waitFor(() => cliProcesses().length >= 13, 30_000, 100, 'the balancer, 4 replicas and 8 traders');
    child.kill('SIGKILL');
    await waitFor(() => cliProcesses().length === 0, 15_000, 100, 'every child to exit');
    await sleep(100);
    expect(cliProcesses()).toEqual([]);
  });
});
