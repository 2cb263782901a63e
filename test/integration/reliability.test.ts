/**
 * Faults survived: a replica that crashes, hangs or drains, and a balancer
 * that goes away and comes back. Replicas that crash or hang run in their
 * own processes (the compiled benchmark worker).
 */
import * as grpc from '@grpc/grpc-js';
import * as path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildOnce } from '../support/build-once';
import { Balancer, clientOptions } from '../../src/index';
import { freePort } from '../../bench/lib/common';
import { PRIME, primeService, type PrimeClient } from '../../bench/lib/prime';
import { echoClient, sleep, startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from '../support/cluster';
import { openLoop } from '../support/load';

const root = path.join(__dirname, '../..');
// The compiled worker machinery (workers are forked from dist/bench/workers).
// eslint-disable-next-line @typescript-eslint/no-require-imports
type WorkerModule = typeof import('../../bench/lib/processes');
let processes: WorkerModule;

beforeAll(() => {
  buildOnce();
  processes = require(path.join(root, 'dist/bench/lib/processes.js')) as WorkerModule;
}, 60_000);

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function workerReplica(balancer: Balancer, name: string) {
  const { worker, ready } = await processes.Worker.start(name, 'prime-replica.js', ['--name', name, '--mode', 'rebind', '--balancer', balancer.controlAddress, '--group', 'bench']);
  cleanups.push(() => {
    worker.process.kill('SIGCONT');
    return worker.stop();
  });
  return { worker, address: String(ready['address']) };
}

function primeClient(target: string, options: grpc.ChannelOptions): PrimeClient {
  const Prime = primeService();
  const c = new Prime(target, grpc.credentials.createInsecure(), options) as unknown as PrimeClient;
  cleanups.push(() => c.close());
  return c;
}

/** Calls IsPrime continuously on each client; counts successes and failures. */
function hammer(clients: PrimeClient[], periodMs = 10) {
  const state = { ok: 0, failed: 0, errors: [] as string[], servedBy: new Map<string, number>(), running: true };
  const loops = clients.map(async (client) => {
    while (state.running) {
      await new Promise<void>((resolve) =>
        client.IsPrime({ number: PRIME }, { deadline: Date.now() + 15_000 }, (err, reply) => {
          if (err) {
            state.failed++;
            if (state.errors.length < 5) state.errors.push(`${grpc.status[err.code]}: ${err.details}`);
          } else {
            state.ok++;
            state.servedBy.set(reply!.served_by, (state.servedBy.get(reply!.served_by) ?? 0) + 1);
          }
          resolve();
        }),
      );
      await sleep(periodMs);
    }
  });
  return {
    state,
    stop: async () => {
      state.running = false;
      await Promise.all(loops);
    },
  };
}

async function benchBalancer(extra: Record<string, unknown> = {}, group: Record<string, unknown> = {}): Promise<Balancer> {
  const b = await startBalancer([{ name: 'bench', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 500, ...group }], extra);
  cleanups.push(() => b.stop());
  return b;
}

describe('replica crash', () => {
  it('idempotent calls lose nothing when a replica is killed; clients re-bind through the balancer', async () => {
    const balancer = await benchBalancer();
    const victim = await workerReplica(balancer, 'victim');
    await workerReplica(balancer, 'survivor');
    const clients = [0, 1, 2, 3].map(() => primeClient(balancer.address, clientOptions({ idempotent: ['bench.v1.Prime'] })));
    const load = hammer(clients);
    await waitFor(() => (load.state.servedBy.get('victim') ?? 0) > 20, 10_000, 10, 'calls on the victim');
    victim.worker.process.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => balancer.registry.groups.get('bench')!.members.size === 1, 5000, 10, 'the crash to be noticed');
    const noticedMs = Date.now() - killedAt;
    const okAtKill = load.state.ok;
    await waitFor(() => load.state.ok > okAtKill + 100, 10_000, 10, 'calls to go on');
    await load.stop();
    expect(load.state.failed, load.state.errors.join('\n')).toBe(0);
    // Stream loss: noticed at once, far within 2 report intervals (1 s).
    expect(noticedMs).toBeLessThan(1000);
  });

  it('a call that may have run is not re-sent unless declared idempotent: it fails with UNAVAILABLE', async () => {
    const balancer = await benchBalancer();
    const victim = await workerReplica(balancer, 'victim');
    const client = primeClient(balancer.address, clientOptions());
    await new Promise<void>((resolve, reject) => client.IsPrime({ number: PRIME }, {}, (e) => (e ? reject(e) : resolve())));
    // Slow the victim down so that a call is surely in flight when it dies.
    await victim.worker.request({ type: 'slow', factor: 20000 });
    const result = new Promise<grpc.ServiceError | null>((resolve) => client.IsPrime({ number: PRIME }, { deadline: Date.now() + 20_000 }, (e) => resolve(e)));
    await sleep(300);
    victim.worker.process.kill('SIGKILL');
    const err = await result;
    expect(err?.code).toBe(grpc.status.UNAVAILABLE);
  });
});

describe('replica hang', () => {
  it('the balancer marks a silent member suspect within 2 report intervals; idempotent clients recover', async () => {
    const balancer = await benchBalancer();
    const hung = await workerReplica(balancer, 'hung');
    await workerReplica(balancer, 'alive');
    const group = balancer.registry.groups.get('bench')!;
    const clients = [0, 1, 2, 3].map(() => primeClient(balancer.address, clientOptions({ idempotent: ['bench.v1.Prime'] })));
    const load = hammer(clients);
    await waitFor(() => (load.state.servedBy.get('hung') ?? 0) > 20, 10_000, 10, 'calls on the replica');
    hung.worker.process.kill('SIGSTOP');
    const stoppedAt = Date.now();
    const member = [...group.members.values()].find((m) => m.address === hung.address)!;
    await waitFor(() => member.state === 'SUSPECT' || !group.members.has(member.id), 5000, 10, 'the hang to be noticed');
    const noticedMs = Date.now() - stoppedAt;
    expect(noticedMs).toBeLessThan(2 * 500 + 200);
    // No new client is sent there.
    expect(group.eligible('/bench.v1.Prime/IsPrime').map((m) => m.address)).not.toContain(hung.address);
    const before = load.state.servedBy.get('alive') ?? 0;
    await waitFor(() => (load.state.servedBy.get('alive') ?? 0) > before + 200, 15_000, 20, 'every client to recover on the live replica');
    await load.stop();
    expect(load.state.failed, load.state.errors.join('\n')).toBe(0);
  });
});

describe('graceful drain', () => {
  it('a replica shutting down moves its clients away and finishes its calls: no call fails, even non-idempotent ones', async () => {
    const balancer = await startBalancer([{ name: 'echo', granularity: 'on-demand', reportIntervalMs: 300 }]);
    cleanups.push(() => balancer.stop());
    const a = await startReplica(balancer, 'A');
    const b = await startReplica(balancer, 'B');
    cleanups.push(() => stopReplica(b));
    const stubs = [0, 1, 2, 3].map(() => echoClient(balancer.address, clientOptions()));
    cleanups.push(() => stubs.forEach((s) => s.close()));
    for (const s of stubs) await unary(s, { text: 'bind' });
    const loads = stubs.map((s) => openLoop(s, 40));
    await sleep(600);
    const removed: string[] = [];
    balancer.registry.listen({ memberRemoved: (_g, m, reason) => m.address === a.address && removed.push(reason) });
    const servedBefore = a.stats.calls;
    await new Promise<void>((resolve) => a.server.tryShutdown(() => resolve()));
    await sleep(600);
    await Promise.all(loads.map((l) => l.stop()));
    expect(loads.reduce((s, l) => s + l.failed, 0), loads.flatMap((l) => l.errors).join('\n')).toBe(0);
    expect(removed).toEqual(['detached by the replica: server shutting down']);
    expect(servedBefore).toBeGreaterThan(0);
    // Everything after the drain was served by B.
    expect(loads.every((l) => (l.servedBy.get('B') ?? 0) > 0)).toBe(true);
  });
});

describe('balancer down and restarted', () => {
  it('bound clients keep calling their replicas; new clients get a clear UNAVAILABLE; state is rebuilt within 2 intervals', async () => {
    const port = await freePort();
    const control = await freePort();
    const config = { listen: `127.0.0.1:${port}`, controlListen: `127.0.0.1:${control}`, adminListen: null, groups: [{ name: 'echo', granularity: 'per-session', reportIntervalMs: 500 }] };
    let balancer = await Balancer.start({ config });
    const replicas: TestReplica[] = [];
    for (const name of ['A', 'B']) {
      const r = await startReplica(balancer, name);
      cleanups.push(() => stopReplica(r));
      replicas.push(r);
    }
    const bound = [0, 1].map(() => echoClient(balancer.address, clientOptions()));
    cleanups.push(() => bound.forEach((s) => s.close()));
    for (const s of bound) await unary(s, { text: 'bind' });
    const loads = bound.map((s) => openLoop(s, 40));
    await balancer.stop();
    await sleep(800);
    // A client that needs a binding now:
    const fresh = echoClient(`127.0.0.1:${port}`, clientOptions());
    cleanups.push(() => fresh.close());
    const err = (await unary(fresh, { text: 'x' }).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toContain(`rebind: balancer 127.0.0.1:${port} is unreachable`);
    const restartedAt = Date.now();
    balancer = await Balancer.start({ config });
    cleanups.push(() => balancer.stop());
    const group = balancer.registry.groups.get('echo')!;
    await waitFor(() => group.members.size === 2 && [...group.members.values()].every((m) => m.reported), 5000, 10, 'the replicas to re-attach and report');
    expect(Date.now() - restartedAt).toBeLessThanOrEqual(2 * 500 + 300);
    await sleep(300);
    await Promise.all(loads.map((l) => l.stop()));
    expect(loads.reduce((s, l) => s + l.failed, 0), loads.flatMap((l) => l.errors).join('\n')).toBe(0);
    // And the new client binds once the balancer is back (its channel may still be in
    // grpc-js's reconnect backoff from the failed attempt: gRPC calls fail fast meanwhile).
    let served = '';
    const deadline = Date.now() + 5000;
    while (served === '' && Date.now() < deadline) {
      served = await unary(fresh, { text: 'y' }).then(
        (r) => r.servedBy,
        () => sleep(100).then(() => ''),
      );
    }
    expect(served).toMatch(/^[AB]$/);
  });
});
