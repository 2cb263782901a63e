/**
 * Builds dist/ once per test run, whichever test files need it: vitest runs
 * files in parallel processes, and two `tsc` runs writing dist/ while a third
 * file's child processes load it could hand one of them a half-written file.
 * The first file to get here builds (holding a lock directory); the others
 * wait for the lock, then skip the build if it finished after their own
 * process started (it is this run's).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

const root = path.join(__dirname, '../..');
const LOCK = path.join(root, 'dist/.build-lock');
const STAMP = path.join(root, 'dist/.build-stamp');
/** A lock older than this is from a build that died: taken over. */
const STALE_LOCK_MS = 120_000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Builds dist/ (tsconfig.build.json) unless another test file of this run just did. */
export function buildOnce(): void {
  const startedAtMs = Date.now() - process.uptime() * 1000;
  mkdirSync(path.dirname(LOCK), { recursive: true });
  for (;;) {
    try {
      mkdirSync(LOCK);
      break;
    } catch {
      if (Date.now() - mtimeMs(LOCK) > STALE_LOCK_MS) rmdirSync(LOCK, { recursive: true } as never);
      else sleepSync(200);
    }
  }
  try {
    if (mtimeMs(STAMP) > startedAtMs) return;
    execFileSync(path.join(root, 'node_modules/.bin/tsc'), ['-p', path.join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
    writeFileSync(STAMP, String(Date.now()));
  } finally {
    rmdirSync(LOCK);
  }
}
