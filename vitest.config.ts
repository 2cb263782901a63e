import * as path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * Files that measure time-sensitive behaviour or count processes machine-wide
 * run one at a time, after the others (which run two at a time): the demo
 * checks that it leaves no rebind CLI process behind (pgrep: another file's
 * CLI processes would count) and judges balance over wall-clock windows, as
 * do the paper scenarios; the benchmark smoke runs count failed calls under
 * open-loop load; the HA tests run etcd with 1 s leases. All of them are fair
 * only when nothing else takes the CPU.
 */
const SERIAL = [
  'test/integration/demo.test.ts',
  'test/integration/strategies.test.ts',
  'test/integration/bench-smoke*.test.ts',
  'test/integration/ha-*.test.ts',
];

const shared = {
  environment: 'node',
  pool: 'forks',
  testTimeout: 60_000,
  hookTimeout: 30_000,
  env: { REBIND_LOG_LEVEL: process.env['REBIND_LOG_LEVEL'] ?? 'silent' },
} as const;

export default defineConfig({
  resolve: { alias: { rebind: path.resolve(__dirname, 'src/index.ts') } },
  test: {
    // Two files at a time (the machine has 2 cores; vitest's default would be one). The
    // fork count is read from the root configuration only, not from a project's.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    projects: [
      {
        extends: true,
        test: {
          ...shared,
          name: 'parallel',
          include: ['test/**/*.test.ts'],
          exclude: SERIAL,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          ...shared,
          name: 'serial',
          include: SERIAL,
          // One fork runs these files one after another (vitest reads singleFork per project).
          poolOptions: { forks: { singleFork: true } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
