import * as path from 'node:path';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: { alias: { rebind: path.resolve(__dirname, 'src/index.ts') } },
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 30_000,
    env: { REBIND_LOG_LEVEL: process.env['REBIND_LOG_LEVEL'] ?? 'silent' },
  },
});
