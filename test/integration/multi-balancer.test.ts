/**
 * Several balancers (issue 14, part C): a replica attaches to each of
 * several balancers over its own control stream, and a rebind client fails
 * over between balancers. Balancers without `ha` stand in for an HA set:
 * each binds from its own control streams' reports. Real gRPC over loopback.
 */
import { experimental } from '@grpc/grpc-js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { attach, balancerTarget, clientEvents, clientOptions, type Balancer } from '../../src/index';
import { resolveBalancers } from '../../src/replica/attach';
import type { Member } from '../../src/balancer/member';
import { echoClient, sleep, startBalancer, unary, waitFor, type TestReplica } from '../support/cluster';
import { echoImplementation, startEchoServer } from '../support/echo';

const GROUPS = [{ name: 'echo', reportIntervalMs: 100 }];
/**
 * For the client tests: no planned moves. Balancers without `ha` each plan
 * and sign with their own key, so a client bound through one refuses (and
 * counts) the others' moves; the HA key ring and leader gating (parts A, B)
 * are what make that right, not failover.
 */
const BIND_ONLY = [{ name: 'echo', reportIntervalMs: 100, granularity: 'per-session' }];

let balancers: Balancer[] = [];
let replicas: TestReplica[] = [];
const closers: (() => void)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) close();
  await Promise.all(replicas.splice(0).map(async (r) => {
    await r.replica.detach('test over');
    r.server.forceShutdown();
  }));
  await Promise.all(balancers.splice(0).map((b) => b.stop()));
});

/** The member `address` is on balancer `b` (undefined when it is not a member there). */
function memberOn(b: Balancer, address: string): Member | undefined {
  return [...(b.registry.groups.get('echo')?.members.values() ?? [])].find((m) => m.address === address);
}

/** A replica attached to every balancer in `on` (by control address). */
async function startMultiReplica(on: Balancer[], name: string): Promise<TestReplica> {
  const stats = { calls: 0, byMethod: {} };
  const implementation = echoImplementation(name, stats);
  const { server, address } = await startEchoServer(name, implementation);
  const replica = await attach(server, { balancer: on.map((b) => b.controlAddress), group: 'echo', address });
  const r = { name, server, address, stats, replica, implementation };
  replicas.push(r);
  return r;
}

describe('a replica attached to several balancers', () => {
  it('is a member of all three, its reports reach all three, and its status lists each balancer', async () => {
    balancers = await Promise.all([0, 1, 2].map(() => startBalancer(GROUPS)));
    const r = await startMultiReplica(balancers, 'r1');
    await waitFor(() => balancers.every((b) => (memberOn(b, r.address)?.reports ?? 0) >= 3), 10_000, 20, 'three reports at each balancer');
    expect(r.replica.state).toBe('attached');
    expect(r.replica.balancers.map((s) => [s.address, s.state, s.attachments])).toEqual(balancers.map((b) => [b.controlAddress, 'attached', 1]));
    for (const [i, b] of balancers.entries()) expect(r.replica.balancers[i]!.memberId).toBe(memberOn(b, r.address)!.id);
    expect(r.replica.attachments).toBe(3);
  });

  it('the same load reaches every balancer: calls made through one balancer are counted at all three', async () => {
    balancers = await Promise.all([0, 1, 2].map(() => startBalancer(GROUPS)));
    const r = await startMultiReplica(balancers, 'r1');
    const plain = echoClient(balancers[0]!.address);
    closers.push(() => plain.close());
    for (let i = 0; i < 40; i++) await unary(plain, { text: 'x' });
    // Proxied by balancer 0 with balancer 0's marker: accepted (the marker of any of its balancers is).
    expect(r.replica.refusals.get('bad_proxied_marker')).toBeUndefined();
    await waitFor(() => balancers.every((b) => memberOn(b, r.address)?.latest !== null && (memberOn(b, r.address)?.latest?.callsPerS ?? 0) > 0), 10_000, 20, 'a report with calls at each balancer');
    // Calls proxied by the others are recognised as theirs, too.
    for (const b of balancers.slice(1)) {
      const c = echoClient(b.address);
      closers.push(() => c.close());
      await unary(c, { text: 'y' });
    }
    expect(r.replica.refusals.get('bad_proxied_marker')).toBeUndefined();
  });

  it('one balancer stopped and restarted on its port does not disturb the others; it gets the replica back', async () => {
    balancers = await Promise.all([0, 1, 2].map(() => startBalancer(GROUPS)));
    const r = await startMultiReplica(balancers, 'r1');
    await waitFor(() => balancers.every((b) => memberOn(b, r.address) !== undefined), 5000, 20, 'member everywhere');
    const kept = [memberOn(balancers[1]!, r.address)!, memberOn(balancers[2]!, r.address)!];
    const states: string[] = [];
    const sub = r.replica.state$.subscribe((s) => states.push(s));
    const port = balancers[0]!.controlAddress.split(':').pop()!;
    await balancers[0]!.stop();
    await waitFor(() => r.replica.balancers[0]!.state === 'connecting', 5000, 10, 'the link to the stopped balancer to notice');
    const reportsBefore = kept.map((m) => m.reports);
    await sleep(500);
    // The other two keep the same member (no re-attach) and its reports go on.
    expect(kept.map((m) => m.reports - reportsBefore[kept.indexOf(m)]!).every((n) => n >= 2)).toBe(true);
    expect([memberOn(balancers[1]!, r.address), memberOn(balancers[2]!, r.address)]).toEqual(kept);
    expect(r.replica.balancers.slice(1).map((s) => [s.state, s.attachments])).toEqual([['attached', 1], ['attached', 1]]);
    balancers[0] = await startBalancer(GROUPS, { controlListen: `127.0.0.1:${port}` });
    await waitFor(() => memberOn(balancers[0]!, r.address) !== undefined && r.replica.balancers[0]!.state === 'attached', 10_000, 20, 'back on the restarted balancer');
    expect(r.replica.balancers.map((s) => s.attachments)).toEqual([2, 1, 1]);
    expect([memberOn(balancers[1]!, r.address), memberOn(balancers[2]!, r.address)]).toEqual(kept);
    sub.unsubscribe();
    // Attached throughout: one balancer's loss is not the replica's.
    expect(states).toEqual(['attached']);
  });

  it('detach and drain reach every balancer', async () => {
    balancers = await Promise.all([0, 1, 2].map(() => startBalancer(GROUPS)));
    const removed = balancers.map(() => [] as string[]);
    for (const [i, b] of balancers.entries()) b.registry.listen({ memberRemoved: (_g, _m, reason) => removed[i]!.push(reason) });
    const a = await startMultiReplica(balancers, 'a');
    const d = await startMultiReplica(balancers, 'd');
    await waitFor(() => balancers.every((b) => memberOn(b, a.address) !== undefined && memberOn(b, d.address) !== undefined), 5000, 20, 'members everywhere');
    await a.replica.detach('leaving');
    replicas = replicas.filter((x) => x !== a);
    a.server.forceShutdown();
    expect(removed).toEqual(balancers.map(() => ['detached by the replica: leaving']));

    // Drain: every balancer hears the draining report (it stops handing the replica out) before the detach.
    const draining = balancers.map(() => false);
    const watch = setInterval(() => balancers.forEach((b, i) => (draining[i] ||= memberOn(b, d.address)?.state === 'DRAINING')), 2);
    closers.push(() => clearInterval(watch));
    const direct = echoClient(d.address);
    closers.push(() => direct.close());
    const inFlight = unary(direct, { text: 'slow', delayMs: 800 }).catch(() => null);
    await waitFor(() => d.replica.meter.inFlight > 0, 5000, 5, 'a call in flight');
    const drained = d.replica.drain({ timeoutMs: 5000 });
    await waitFor(() => draining.every(Boolean), 5000, 5, 'DRAINING at every balancer');
    await inFlight;
    expect(await drained).toEqual({ inFlightLeft: 0 });
    replicas = replicas.filter((x) => x !== d);
    d.server.forceShutdown();
    expect(removed.map((list) => list[1])).toEqual(balancers.map(() => 'detached by the replica: drained'));
  });

  it('refuses more than MAX_BALANCERS (16) balancers, duplicates, and a name that resolves to more than 16 addresses', async () => {
    const many = Array.from({ length: 17 }, (_, i) => `127.0.0.1:${2000 + i}`);
    await expect(resolveBalancers(many)).rejects.toThrow('rebind attach: balancer lists 17 balancers; at most 16 (MAX_BALANCERS) are accepted');
    await expect(resolveBalancers(['127.0.0.1:1', '127.0.0.1:1'])).rejects.toThrow('balancer lists 127.0.0.1:1 twice');
    const ips = Array.from({ length: 17 }, (_, i) => `10.0.0.${i + 1}`);
    await expect(resolveBalancers('balancers.example:50052', async () => ips)).rejects.toThrow('balancer balancers.example:50052 resolves to 17 addresses; at most 16 (MAX_BALANCERS)');
  });

  it('one DNS name with several addresses is several balancers (TLS still checks the name); with one address it stays the name', async () => {
    expect(await resolveBalancers('balancers.example:50052', async () => ['10.0.0.1', 'fd00::2', '10.0.0.1'])).toEqual([
      { address: '10.0.0.1:50052', authority: 'balancers.example:50052' },
      { address: '[fd00::2]:50052', authority: 'balancers.example:50052' },
    ]);
    expect(await resolveBalancers('one.example:50052', async () => ['10.0.0.1'])).toEqual([{ address: 'one.example:50052', authority: null }]);
    expect(await resolveBalancers('gone.example:50052', async () => Promise.reject(new Error('ENOTFOUND')))).toEqual([{ address: 'gone.example:50052', authority: null }]);
  });
});

/** A balancer in its own process (the rebind CLI), so that it can be SIGKILLed. */
async function balancerProcess(): Promise<{ data: string; control: string; child: ChildProcess }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rebind-multi-'));
  const file = path.join(dir, 'balancer.json');
  writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', controlListen: '127.0.0.1:0', adminListen: null, groups: BIND_ONLY }));
  const root = path.join(__dirname, '../..');
  // node itself (not the tsx wrapper, which runs node as its child): SIGKILL must hit the balancer.
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src/cli/main.ts'), 'balancer', '--config', file], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'inherit'],
    env: { ...process.env, REBIND_LOG_LEVEL: 'silent' },
  });
  closers.push(() => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^balancer listening: data (\S+), control ([^\s,]+)/.exec(line);
      if (m !== null) resolve({ data: m[1]!, control: m[2]!, child });
    });
    child.once('exit', () => reject(new Error('balancer process exited before it was ready')));
  });
}

/** An address where nothing listens (connections are refused). */
async function deadAddress(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

describe('a rebind client given several balancers', () => {
  const refused: string[] = [];
  const listener = { refused: (from: string, to: string, why: string) => void refused.push(`${from} -> ${to}: ${why}`) };
  beforeEach(() => {
    refused.length = 0;
    clientEvents.add(listener);
    closers.push(() => void clientEvents.delete(listener));
  });

  it('uses another balancer when the first listed is unreachable, and trusts its forwards', async () => {
    balancers = await Promise.all([0, 1].map(() => startBalancer(BIND_ONLY)));
    await Promise.all(['r1', 'r2'].map((n) => startMultiReplica(balancers, n)));
    const dead = await deadAddress();
    const client = echoClient(balancerTarget([dead, balancers[0]!.address, balancers[1]!.address]), clientOptions());
    closers.push(() => client.close());
    const reply = await unary(client, { text: 'hi' }, undefined, { deadline: Date.now() + 5000 });
    expect(['r1', 'r2']).toContain(reply.servedBy);
    // Bound by one of the live balancers: its forward was followed as the balancer's.
    expect(balancers.map((b) => b.registry.groups.get('echo')!.counters.binds).sort()).toEqual([0, 1]);
    expect(refused).toEqual([]);
  });

  it('each channel takes the balancers in its own random order, so binds spread over the set', async () => {
    balancers = await Promise.all([0, 1, 2].map(() => startBalancer(BIND_ONLY)));
    await Promise.all(['r1', 'r2'].map((n) => startMultiReplica(balancers, n)));
    await waitFor(() => balancers.every((b) => b.registry.groups.get('echo')!.members.size === 2), 5000, 20, 'members everywhere');
    const target = balancerTarget(balancers.map((b) => b.address));
    const clients = Array.from({ length: 30 }, () => echoClient(target, clientOptions()));
    closers.push(() => clients.forEach((c) => c.close()));
    await Promise.all(clients.map((c) => unary(c, { text: 'bind' }, undefined, { deadline: Date.now() + 5000 })));
    const binds = balancers.map((b) => b.registry.groups.get('echo')!.counters.binds);
    expect(binds.reduce((a, b) => a + b, 0)).toBe(30);
    // Uniform over 3: each gets 10 on average; P(some balancer < 3 of 30) is below 1e-3.
    for (const n of binds) expect(n).toBeGreaterThanOrEqual(3);
  });

  it('a re-resolution that lists its balancer among others keeps the connection to it', async () => {
    balancers = await Promise.all([0, 1].map(() => startBalancer(BIND_ONLY)));
    await startMultiReplica(balancers, 'r1');
    await waitFor(() => balancers.every((b) => b.registry.groups.get('echo')!.members.size === 1), 5000, 20, 'member everywhere');
    const sessions = (b: Balancer) => (b.dataPlane as unknown as { server: { connections: Set<unknown> } }).server.connections;
    const lists = new Map<string, string[]>();
    const listeners = new Map<string, experimental.ResolverListener>();
    const push = (name: string) => {
      const endpoints = lists.get(name)!.map((a) => ({ addresses: [{ host: a.split(':')[0]!, port: Number(a.split(':')[1]) }] }));
      listeners.get(name)!({ ok: true, value: endpoints } as never, {}, null, '');
    };
    experimental.registerResolver(
      'rebindtest',
      class {
        constructor(private readonly target: { path: string }, listener: experimental.ResolverListener) {
          listeners.set(target.path, listener);
        }
        updateResolution() {
          setImmediate(() => push(this.target.path));
        }
        destroy() {}
        static getDefaultAuthority(target: { path: string }) {
          return target.path;
        }
      } as never,
    );
    lists.set('keep', [balancers[0]!.address]);
    const client = echoClient('rebindtest:keep', clientOptions());
    closers.push(() => client.close());
    await unary(client, { text: 'bind' }, undefined, { deadline: Date.now() + 5000 });
    await waitFor(() => sessions(balancers[0]!).size === 1, 5000, 10, 'the client connected to balancer 0');
    const session = [...sessions(balancers[0]!)][0];
    // DNS now answers with a second balancer first: the channel stays on the one it uses.
    lists.set('keep', [balancers[1]!.address, balancers[0]!.address]);
    push('keep');
    await sleep(500);
    expect([...sessions(balancers[0]!)]).toEqual([session]);
    expect(sessions(balancers[1]!).size).toBe(0);
    await unary(client, { text: 'still bound' }, undefined, { deadline: Date.now() + 5000 });
  });

  it('names every listed balancer when none is reachable', async () => {
    const dead = [await deadAddress(), await deadAddress()];
    const client = echoClient(balancerTarget(dead), clientOptions());
    closers.push(() => client.close());
    const err = await unary(client, { text: 'hi' }, undefined, { deadline: Date.now() + 5000 }).then(() => null, (e: Error) => e);
    expect(err?.message).toContain(`rebind: balancer ${dead.join(',')} is unreachable`);
  });

  it('SIGKILL of the balancer clients use: bound clients see no failed call; a new client binds through the survivors within 1 s', async () => {
    const killed = await balancerProcess();
    balancers = await Promise.all([0, 1].map(() => startBalancer(BIND_ONLY)));
    const controls = [killed.control, ...balancers.map((b) => b.controlAddress)];
    for (const n of ['r1', 'r2', 'r3', 'r4']) {
      const stats = { calls: 0, byMethod: {} };
      const implementation = echoImplementation(n, stats);
      const { server, address } = await startEchoServer(n, implementation);
      replicas.push({ name: n, server, address, stats, replica: await attach(server, { balancer: controls, group: 'echo', address }), implementation });
    }
    await waitFor(() => balancers.every((b) => b.registry.groups.get('echo')!.members.size === 4), 5000, 20, 'four members on each in-process balancer');
    const target = balancerTarget([killed.data, ...balancers.map((b) => b.address)]);
    const bound = Array.from({ length: 12 }, () => echoClient(target, clientOptions()));
    closers.push(() => bound.forEach((c) => c.close()));
    // Bound through whichever balancer each channel took first (its own random order): some through the one killed below.
    for (const c of bound) await unary(c, { text: 'bind' }, undefined, { deadline: Date.now() + 5000 });
    const survivorBinds = () => balancers.reduce((n, b) => n + b.registry.groups.get('echo')!.counters.binds, 0);
    const bindsBefore = survivorBinds();

    let failed = 0;
    let calls = 0;
    let running = true;
    const loops = bound.map(async (c) => {
      while (running) {
        await unary(c, { text: 'steady' }, undefined, { deadline: Date.now() + 2000 }).then(() => calls++, () => failed++);
        await sleep(10);
      }
    });
    await sleep(200);
    killed.child.kill('SIGKILL');
    const killedAt = performance.now();
    const fresh = echoClient(target, clientOptions());
    closers.push(() => fresh.close());
    const reply = await unary(fresh, { text: 'new' }, undefined, { deadline: Date.now() + 5000 });
    const failoverMs = performance.now() - killedAt;
    console.log(`new client bound through a survivor ${failoverMs.toFixed(1)} ms after the SIGKILL`);
    expect(reply.servedBy).toMatch(/^r[1-4]$/);
    expect(failoverMs).toBeLessThan(1000);
    expect(survivorBinds() - bindsBefore).toBe(1);
    const callsAtKill = calls;
    await sleep(1000);
    running = false;
    await Promise.all(loops);
    expect(calls - callsAtKill).toBeGreaterThan(50);
    expect(failed).toBe(0);
    expect(refused).toEqual([]);
  }, 30_000);
});
