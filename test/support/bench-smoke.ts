/**
 * What the benchmark smoke test files share: each runs benchmarks' --quick
 * modes from dist/ (built once per test run) into its own temporary
 * directory and reads back what they wrote.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const root = path.join(__dirname, '../..');

export interface BenchRunner {
  /** Runs `dist/bench/<name>.js --quick --out <dir> ...extra`; resolves with its exit code (0 or 1) and stderr. */
  bench(name: string, ...extra: string[]): Promise<{ code: number; stderr: string }>;
  /** A file the benchmarks wrote. */
  read(file: string): string;
}

/** A runner writing into a fresh temporary directory. */
export function benchRunner(): BenchRunner {
  const out = mkdtempSync(path.join(tmpdir(), 'rebind-bench-smoke-'));
  return {
    bench: (name, ...extra) =>
      new Promise((resolve) => {
        execFile(process.execPath, [path.join(root, `dist/bench/${name}.js`), '--quick', '--out', out, ...extra], { encoding: 'utf8', timeout: 240_000, maxBuffer: 10_000_000 }, (err, _stdout, stderr) =>
          resolve({ code: err ? 1 : 0, stderr }),
        );
      }),
    read: (file) => readFileSync(path.join(out, file), 'utf8'),
  };
}
