/**
 * How the balancer's Node process should run when it has one CPU.
 *
 * V8 collects garbage with helper threads (parallel scavenges, concurrent
 * marking). On a machine or container that gives the process one CPU
 * (taskset, cpuset, a CFS quota of one core), those threads take that CPU
 * from the main thread: every scavenge and every marking cycle stalls the
 * event loop for longer than doing the same work on the main thread would.
 * Measured with bench:scale (1,000 replicas, 10,000 binds/s, balancer on one
 * core, interleaved runs): bind p99 13-39 ms with V8's defaults, 4-8 ms with
 * {@link ONE_CORE_NODE_FLAGS}. These flags cannot be set from inside a
 * running process (V8 aborts if single-threaded GC is switched on after its
 * threads started), so the balancer only detects the case and says so at
 * start-up; the operator adds the flags to the node command line.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

/**
 * Node flags for a balancer that has one CPU: garbage collection on the main
 * thread only, and a 4 MiB young generation (semi-space), so that
 * scavenges are short and frequent rather than long and rare.
 */
export const ONE_CORE_NODE_FLAGS: readonly string[] = Object.freeze(['--single-threaded-gc', '--max-semi-space-size=4']);

/**
 * CPUs this process may use: the CPU affinity mask (what taskset and cpusets
 * set; os.availableParallelism reads it) and, under cgroup v2 or v1, the CFS
 * quota (a container's CPU limit), rounded up to whole CPUs. `readText` is
 * for tests.
 */
export function availableCpus(readText: (file: string) => string | null = readIfPresent, affinity: number = availableParallelism()): number {
  let cpus = affinity;
  const quota = cgroupQuotaCpus(readText);
  if (quota !== null) cpus = Math.min(cpus, Math.max(1, Math.ceil(quota)));
  return cpus;
}

/** The CFS quota in CPUs (cgroup v2 cpu.max, else v1 cfs_quota_us / cfs_period_us), or null when unlimited or unknown. */
export function cgroupQuotaCpus(readText: (file: string) => string | null = readIfPresent): number | null {
  const v2 = readText('/sys/fs/cgroup/cpu.max');
  if (v2 !== null) {
    const [quota, period] = v2.trim().split(/\s+/);
    if (quota === undefined || quota === 'max') return null;
    const q = Number(quota);
    const p = Number(period ?? '100000');
    return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
  }
  const q = Number(readText('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')?.trim() ?? NaN);
  const p = Number(readText('/sys/fs/cgroup/cpu/cpu.cfs_period_us')?.trim() ?? NaN);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

/**
 * What to tell the operator at start-up: null when the process has more
 * than one CPU or already runs with single-threaded GC; otherwise the flags
 * to add and why.
 */
export function oneCoreAdvice(cpus: number, execArgv: readonly string[]): string | null {
  if (cpus > 1) return null;
  if (execArgv.some((a) => a === '--single-threaded-gc' || a === '--single_threaded_gc')) return null;
  return (
    `this process has ${cpus} CPU, and V8's garbage-collection threads take it from the event loop (longer pauses, higher bind latency); ` +
    `run node with ${ONE_CORE_NODE_FLAGS.join(' ')} (e.g. node ${ONE_CORE_NODE_FLAGS.join(' ')} dist/src/cli/main.js balancer …): see the README, "Running on one core"`
  );
}

function readIfPresent(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}
