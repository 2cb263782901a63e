/**
 * Hardening of the client and of bind accounting (issue 11): each test here
 * reproduces a defect and failed on the code before its fix (9d54503).
 */
import * as grpc from '@grpc/grpc-js';
import * as http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { clientEvents, clientOptions } from '../../src/index';
import { echoClient, startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from '../support/cluster';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

/**
 * Puts an interceptor in front of rebind's on a replica that holds calls
 * carrying "x-hold: 1" until release() is called (a call in flight on the
 * network, not yet seen by rebind's interceptor).
 */
function holdGate(r: TestReplica): { held: () => number; release: () => void } {
  let waiting: (() => void)[] = [];
  let released = false;
  const gate: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            if (metadata.get('x-hold')[0] !== '1' || released) return mdNext(metadata);
            waiting.push(() => mdNext(metadata));
          },
        }),
    });
  (r.server as unknown as { interceptors: grpc.ServerInterceptor[] }).interceptors.unshift(gate);
  return {
    held: () => waiting.length,
    release: () => {
      released = true;
      const list = waiting;
      waiting = [];
      for (const w of list) w();
    },
  };
}

describe('a stale forward does not unbind the current binding (item 7)', () => {
  it('a drain forward for a call that was in flight at the old replica leaves the new binding alone', async () => {
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    const replicas = [await startReplica(balancer, 'A'), await startReplica(balancer, 'B')];
    for (const r of replicas) cleanups.push(() => stopReplica(r));
    const clientId = 'stale-forward-client';
    const events: string[] = [];
    const listener = {
      unbound: (from: string, reason: string, id: string | null) => void (id === clientId && events.push(`unbound ${from}: ${reason}`)),
      forwarded: (from: string, to: string, reason: string, id: string | null) => void (id === clientId && events.push(`forwarded ${from} -> ${to} (${reason})`)),
    };
    clientEvents.add(listener);
    cleanups.push(() => void clientEvents.delete(listener));
    const stub = echoClient(balancer.address, clientOptions({ clientId }));
    cleanups.push(() => stub.close());
    const first = (await unary(stub, { text: 'bind' })).servedBy;
    const old = replicas.find((r) => r.name === first)!;
    const other = replicas.find((r) => r.name !== first)!;
    const gate = holdGate(old);
    // A call on its way to the old replica, not yet seen by it.
    const held = metadataWith('x-hold', '1');
    const inFlight = unary(stub, { text: 'in flight' }, held, { deadline: Date.now() + 10_000 });
    await waitFor(() => gate.held() === 1, 5000, 5, 'the call to be held');
    // The old replica drains: its next call is forwarded back, and the client is bound to the other one.
    const drained = old.replica.drain({ timeoutMs: 200 });
    await waitFor(() => old.replica.forwards.draining, 5000, 5, 'the drain to start');
    expect((await unary(stub, { text: 'after drain' })).servedBy).toBe(other.name);
    const forwardsAfterRebind = balancer.registry.groups.get('echo')!.counters.forwards;
    // Now the held call reaches the old replica, which answers it with a drain forward.
    gate.release();
    expect((await inFlight).servedBy).toBe(other.name);
    await drained;
    // The new binding stands: later calls go straight to the other replica, no new bind.
    for (let i = 0; i < 3; i++) expect((await unary(stub, { text: `later ${i}` })).servedBy).toBe(other.name);
    expect(balancer.registry.groups.get('echo')!.counters.forwards).toBe(forwardsAfterRebind);
    expect(events.filter((e) => e.startsWith('unbound'))).toHaveLength(1);
  });
});

function metadataWith(key: string, value: string): grpc.Metadata {
  const m = new grpc.Metadata();
  m.set(key, value);
  return m;
}

describe('binds that are never used do not skew choices (item 8)', () => {
  /** Binds with a fresh client id each, from one connection, never followed. */
  async function unusedBinds(address: string, count: number): Promise<number> {
    const session = http2.connect(`http://${address}`);
    cleanups.push(() => void session.destroy());
    let forwards = 0;
    const one = (i: number) =>
      new Promise<void>((resolve) => {
        const stream = session.request({
          ':method': 'POST',
          ':path': '/rebind.test.Echo/Unary',
          'content-type': 'application/grpc',
          te: 'trailers',
          'user-agent': `grpc-node-js/1.14 rebind/1 rebind-cid/attacker-${String(i).padStart(8, '0')}`,
        });
        stream.on('response', (headers) => {
          if (headers['rebind-forward'] !== undefined) forwards++;
        });
        stream.on('close', () => resolve());
        stream.on('error', () => resolve());
        stream.end();
      });
    for (let i = 0; i < count; i += 50) await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, k) => one(i + k)));
    return forwards;
  }

  it("a flood of unused binds from one caller cannot push every member over least_loaded's reject threshold", async () => {
    const balancer = await startBalancer([
      // Long report interval: the credit would stand until the next report.
      { name: 'echo', granularity: 'per-session', strategy: { name: 'least_loaded', params: { rejectThreshold: 100 } }, reportIntervalMs: 5000 },
    ]);
    cleanups.push(() => balancer.stop());
    const replicas = [await startReplica(balancer, 'A'), await startReplica(balancer, 'B')];
    for (const r of replicas) cleanups.push(() => stopReplica(r));
    const group = balancer.registry.groups.get('echo')!;
    await waitFor(() => [...group.members.values()].every((m) => m.reported), 5000, 10, 'first reports');
    expect(await unusedBinds(balancer.address, 1000)).toBe(1000);
    // Credit is bounded per caller: far below the reject threshold.
    const pending = [...group.members.values()].reduce((s, m) => s + m.pendingBinds, 0);
    expect(pending).toBeLessThanOrEqual(balancer.config.limits.maxPendingBindsPerCaller);
    expect(balancer.refusals.get('pending_bind_credit_capped')).toBe(1000 - pending);
    // A legitimate client still gets a binding.
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    expect(['A', 'B']).toContain((await unary(stub, { text: 'legit' }, new grpc.Metadata(), { deadline: Date.now() + 5000 })).servedBy);
  });
});

describe('one caller holding proxied calls open cannot take the replicas from others', () => {
  it('calls beyond limits.maxProxiedCallsPerCaller from one address get RESOURCE_EXHAUSTED; another address is served', async () => {
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-request', reportIntervalMs: 200 }], { limits: { maxProxiedCallsPerCaller: 5 } });
    cleanups.push(() => balancer.stop());
    const r = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(r));
    // Another host (127.0.0.2 is loopback too): calls whose requests it never finishes.
    const session = http2.connect(`http://${balancer.address}`, { localAddress: '127.0.0.2' } as http2.SecureClientSessionOptions);
    cleanups.push(() => void session.destroy());
    const statuses: string[] = [];
    const held: http2.ClientHttp2Stream[] = [];
    for (let i = 0; i < 6; i++) {
      const s = session.request({ ':method': 'POST', ':path': '/rebind.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
      s.on('response', (h) => h['grpc-status'] !== undefined && statuses.push(String(h['grpc-status'])));
      s.on('error', () => undefined);
      held.push(s);
    }
    await waitFor(() => statuses.length === 1, 5000, 10, 'the sixth call to be refused');
    expect(statuses).toEqual([String(grpc.status.RESOURCE_EXHAUSTED)]);
    expect(balancer.refusals.get('proxy_caller_limit')).toBe(1);
    // A plain client on 127.0.0.1 is proxied as usual.
    const plain = echoClient(balancer.address);
    cleanups.push(() => plain.close());
    expect((await unary(plain, { text: 'other host' }, new grpc.Metadata(), { deadline: Date.now() + 5000 })).servedBy).toBe('A');
    // When the held calls end, their caller has room again.
    for (const s of held) s.close();
    await waitFor(() => balancer.dataPlane['proxiedByCaller'].size === 0, 5000, 10, 'the held calls to end');
  });
});
