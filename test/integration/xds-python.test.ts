/**
 * xDS (issue 13) with a stock non-Node client: Debian's python3-grpcio (gRPC
 * C core), target xds:///echo, bootstrap from rebind's xdsBootstrap(), one
 * process (one node id) per client. Installed by
 * test/support/install-python-grpc.sh (CI runs it); without it the tests
 * fail and say how to install it.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { xdsBootstrap } from '../../src/balancer/xds/bootstrap';
import type { Balancer } from '../../src/index';
import { sleep, startBalancer, startReplica, stopReplica, waitFor, type TestReplica } from '../support/cluster';

const PYTHON = '/usr/bin/python3';
const CLIENT = path.join(__dirname, '../support/xds_echo_client.py');

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

function pythonGrpc(): string {
  try {
    return execFileSync(PYTHON, ['-c', 'import grpc; print(grpc.__version__)'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('python3-grpcio is not installed: run test/support/install-python-grpc.sh (as root)');
  }
}

interface PyResult {
  ok: number;
  failed: number;
  served: Record<string, number>;
  errors: string[];
}

/** Runs the Python xDS client as node `nodeId`: `calls` calls, one every `periodMs` (`target`: another target than xds:///echo, e.g. the balancer's data port). */
function pythonClient(balancer: Balancer, nodeId: string, calls: number, periodMs: number, target = 'xds:///echo'): Promise<PyResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(xdsBootstrap(balancer.controlAddress, 'echo', nodeId)) };
  delete env['GRPC_XDS_BOOTSTRAP'];
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [CLIENT, target, String(calls), String(periodMs)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    cleanups.push(() => void child.kill('SIGKILL'));
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.on('exit', (code) => {
      try {
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as PyResult);
      } catch {
        reject(new Error(`python client exited ${code}: ${out.slice(-500)} ${err}`));
      }
    });
  });
}

async function cluster(granularity: string, names: string[], intervalMs = 250): Promise<{ balancer: Balancer; replicas: TestReplica[] }> {
  const balancer = await startBalancer([{ name: 'echo', granularity, strategy: granularity === 'per-request' ? 'round_robin' : 'minimum_dispersion', reportIntervalMs: intervalMs }]);
  cleanups.push(() => balancer.stop());
  const replicas: TestReplica[] = [];
  for (const name of names) {
    const r = await startReplica(balancer, name);
    replicas.push(r);
    cleanups.push(() => stopReplica(r));
  }
  const group = balancer.registry.groups.get('echo')!;
  await waitFor(() => [...group.members.values()].every((m) => m.reports > 0), 10_000);
  return { balancer, replicas };
}

describe('a Python grpcio client through xDS (xds:///echo)', () => {
  it('calls the replicas directly, spread by its binding (per-request: every member), the data port sees none', async () => {
    expect(pythonGrpc()).toMatch(/^1\./);
    const { balancer } = await cluster('per-request', ['A', 'B']);
    const result = await pythonClient(balancer, 'py-client-1', 60, 0);
    expect(result.failed, result.errors.join('; ')).toBe(0);
    expect(result.ok).toBe(60);
    expect(result.served['A']).toBeGreaterThan(15);
    expect(result.served['B']).toBeGreaterThan(15);
    const group = balancer.registry.groups.get('echo')!;
    expect(group.counters.proxiedCalls).toBe(0);
    expect(group.counters.forwards).toBe(0);
  }, 60_000);

  it('on-demand: 4 clients on A, B attaches: the planner moves 2 by EDS pushes within 5 report intervals (their LRS loads), 0 failed calls, then no more pushes', async () => {
    const intervalMs = 500;
    const { balancer, replicas } = await cluster('on-demand', ['A'], intervalMs);
    const group = balancer.registry.groups.get('echo')!;
    // 4 clients at 50 calls/s for 14 s.
    const runs = [1, 2, 3, 4].map((i) => pythonClient(balancer, `py-od-${i}`, 700, 20));
    await waitFor(() => group.ledger.bindingCount === 4, 15_000, 20, 'four xDS clients bound');
    await sleep(3 * intervalMs);
    const b = await startReplica(balancer, 'B');
    replicas.push(b);
    cleanups.push(() => stopReplica(b));
    const memberB = [...group.members.values()].find((m) => m.address === b.address)!;
    const balanced = () => {
      const counts = replicas.map((r) => r.stats.calls);
      return counts;
    };
    // Balanced within 5 of B's report intervals: both replicas serve within 10 % of the mean over 1 s.
    let window: number[] = [];
    for (;;) {
      const before = balanced();
      await sleep(1000);
      window = balanced().map((c, i) => c - before[i]!);
      const mean = (window[0]! + window[1]!) / 2;
      if (Math.max(...window) <= 1.1 * mean && mean > 0) break;
      if (memberB.reports > 8) throw new Error(`not balanced after ${memberB.reports} intervals of B: ${window.join('/')}`);
    }
    expect(memberB.reports).toBeLessThanOrEqual(7);
    const pushes = balancer.xds!.pushes;
    const reportsAtBalance = memberB.reports;
    await waitFor(() => memberB.reports >= reportsAtBalance + 10, 15_000, 50, '10 more report intervals');
    expect(balancer.xds!.pushes).toBe(pushes);
    const results = await Promise.all(runs);
    expect(results.reduce((sum, r) => sum + r.failed, 0), results.flatMap((r) => r.errors).join('; ')).toBe(0);
  }, 90_000);
});

describe('a Python grpcio client (gRPC C core) on the data port, plain target', () => {
  it("is relayed by rebind's HTTP/2 transport (server side to the client, client side to the replicas), spread over both, none failed", async () => {
    expect(pythonGrpc()).toMatch(/^1\./);
    const { balancer } = await cluster('per-request', ['A', 'B']);
    const result = await pythonClient(balancer, 'py-plain-1', 60, 0, balancer.address);
    expect(result.failed, result.errors.join('; ')).toBe(0);
    expect(result.ok).toBe(60);
    expect(result.served['A']).toBeGreaterThan(15);
    expect(result.served['B']).toBeGreaterThan(15);
    const group = balancer.registry.groups.get('echo')!;
    expect(group.counters.proxiedCalls).toBe(60);
    expect(balancer.xds?.streamCount ?? 0).toBe(0);
  }, 60_000);
});
