import * as path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * Files that measure time-sensitive behaviour or count processes machine-wide:
 * run one at a time, after the rest. The demo checks that it leaves no rebind
 * CLI process behind (pgrep: another file's CLI processes would count), the
 * paper scenarios and the benchmark smoke runs judge balance over wall-clock
 * windows, the HA tests run etcd with 1 s leases; all of them are fair only
 * when nothing else takes the CPU.
 */
const SERIAL = [
  'test/integration/demo.test.ts',
  'test/integration/cli.test.ts',
  'test/integration/readme.test.ts',
  'test/integration/strategies.test.ts',
  'test/integration/bench-smoke*.test.ts',
  'test/integration/ha-*.test.ts',
  'test/integration/key-rotation.test.ts',
  'test/integration/multi-balancer.test.ts',
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
    projects: [
      {
        extends: true,
        test: {
          ...shared,
          name: 'parallel',
          include: ['test/**/*.test.ts'],
          exclude: SERIAL,
          // Two files at a time (the machine has 2 cores); vitest's default would be one.
          poolOptions: { forks: { maxForks: 2, minForks: 1 } },
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          ...shared,
          name: 'serial',
          include: SERIAL,
          poolOptions: { forks: { maxForks: 1, minForks: 1 } },
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
