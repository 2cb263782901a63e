/**
 * Issue 2 acceptance, end to end over real gRPC on loopback: the forward
 * (redirect) path, the proxy path, the three granularities, forward loops,
 * and re-binding after a replica fails.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, Balancer, clientEvents, clientOptions } from '../../src/index';
import { FORWARD_STATUS, FORWARD_TRAILER, RETRY_PUSHBACK_TRAILER } from '../../src/common/wire';
import { ORCA_SERVICE_PATH } from '../../src/replica/orca';
import type { EchoClient } from './../support/echo';
import { EchoService, startEchoServer } from '../support/echo';
import { FaultRelay } from '../support/fault-relay';
import { echoClient, sleep, startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from '../support/cluster';

const cleanups: (() => Promise<void> | void)[] = [];

/** Counts the forwards clients in this process follow (as they see them). */
function countClientForwards(): { count: number } {
  const counter = { count: 0 };
  const listener = { forwarded: () => void counter.count++ };
  clientEvents.add(listener);
  cleanups.push(() => void clientEvents.delete(listener));
  return counter;
}

afterEach(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups.length = 0;
});

async function cluster(group: Record<string, unknown>, replicas: string[]): Promise<{ balancer: Balancer; replicas: TestReplica[] }> {
  const balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200, ...group }]);
  cleanups.push(() => balancer.stop());
  const started: TestReplica[] = [];
  for (const name of replicas) {
    const r = await startReplica(balancer, name);
    cleanups.push(() => stopReplica(r));
    started.push(r);
  }
  return { balancer, replicas: started };
}

function client(address: string, options: grpc.ChannelOptions = {}): EchoClient {
  const c = echoClient(address, options);
  cleanups.push(() => c.close());
  return c;
}

function counters(balancer: Balancer) {
  return balancer.registry.groups.get('echo')!.counters;
}

/** Written once against the generated stub; knows nothing of rebind. */
async function useEcho(stub: EchoClient): Promise<string[]> {
  const served: string[] = [];
  const reply = await new Promise<{ servedBy: string }>((resolve, reject) =>
    stub.unary({ text: 'hello' }, (err, r) => (err ? reject(err) : resolve(r!))),
  );
  served.push(reply.servedBy);
  await new Promise<void>((resolve, reject) => {
    const stream = stub.serverStream({ text: 'tick', count: 2 });
    stream.on('data', (r: { servedBy: string }) => served.push(r.servedBy));
    stream.on('error', reject);
    stream.on('end', resolve);
  });
  return served;
}

describe('one client function, two targets', () => {
  it('works against a replica directly and against the balancer; only target and options differ', async () => {
    const { balancer, replicas } = await cluster({ granularity: 'per-session', strategy: 'round_robin' }, ['A']);
    const direct = await useEcho(client(replicas[0]!.address));
    const balanced = await useEcho(client(balancer.address, clientOptions()));
    expect(direct).toEqual(['A', 'A', 'A']);
    expect(balanced).toEqual(['A', 'A', 'A']);
    expect(counters(balancer).forwards).toBe(1);
    expect(counters(balancer).proxiedCalls).toBe(0);
  });
});

describe('plain clients', () => {
  it('a grpc-js client with no rebind plumbing is proxied by the balancer', async () => {
    const { balancer, replicas } = await cluster({ granularity: 'on-demand' }, ['A', 'B']);
    const plain = client(balancer.address);
    const served = [];
    for (let i = 0; i < 6; i++) served.push((await unary(plain, { text: `p${i}` })).servedBy);
    expect(counters(balancer).proxiedCalls).toBe(6);
    expect(counters(balancer).forwards).toBe(0);
    expect(replicas[0]!.stats.calls + replicas[1]!.stats.calls).toBe(6);
  });
});

describe.each([
  ['redirect', true],
  ['proxy', false],
])('four call kinds through the %s path', (_path, rebindAware) => {
  async function setup() {
    const { balancer } = await cluster({ granularity: 'per-session', strategy: 'round_robin' }, ['A']);
    const stub = client(balancer.address, rebindAware ? clientOptions() : {});
    return { balancer, stub };
  }
  function md(): grpc.Metadata {
    const m = new grpc.Metadata();
    m.set('x-trace', 'trace-42');
    m.set('x-bin-bin', Buffer.from([0, 1, 2, 255]));
    return m;
  }
  const deadline = () => Date.now() + 5000;

  it('unary: message, metadata, headers, trailers and deadline intact', async () => {
    const { balancer, stub } = await setup();
    let headers: grpc.Metadata | null = null;
    let trailers: grpc.Metadata | null = null;
    const reply = await new Promise<{ text: string; servedBy: string }>((resolve, reject) => {
      const call = stub.unary({ text: 'hi' }, md(), { deadline: deadline() }, (err, r) => (err ? reject(err) : resolve(r!)));
      call.on('metadata', (m) => (headers = m));
      call.on('status', (s) => (trailers = s.metadata));
    });
    expect(reply).toMatchObject({ text: 'hi', servedBy: 'A' });
    expect(headers!.get('echo-x-trace')).toEqual(['trace-42']);
    await waitFor(() => trailers !== null);
    expect(trailers!.get('trailer-x-trace')).toEqual(['trace-42']);
    const left = Number(trailers!.get('deadline-left-ms')[0]);
    expect(left).toBeGreaterThan(2000);
    expect(left).toBeLessThanOrEqual(5000);
    expect(counters(balancer).forwards + counters(balancer).proxiedCalls).toBe(1);
  });

  it('server streaming: all messages then trailers', async () => {
    const { stub } = await setup();
    const replies: number[] = [];
    const trailers = await new Promise<grpc.Metadata>((resolve, reject) => {
      const call = stub.serverStream({ text: 's', count: 5 }, md(), { deadline: deadline() });
      call.on('data', (r: { index: number }) => replies.push(r.index));
      call.on('status', (s) => resolve(s.metadata));
      call.on('error', reject);
    });
    expect(replies).toEqual([0, 1, 2, 3, 4]);
    expect(trailers.get('trailer-x-trace')).toEqual(['trace-42']);
    expect(Number(trailers.get('deadline-left-ms')[0])).toBeGreaterThan(2000);
  });

  it('client streaming: every request message arrives, in order', async () => {
    const { stub } = await setup();
    let trailers: grpc.Metadata | null = null;
    const reply = await new Promise<{ text: string; index: number }>((resolve, reject) => {
      const call = stub.clientStream(md(), { deadline: deadline() }, (err, r) => (err ? reject(err) : resolve(r!)));
      call.on('status', (s) => (trailers = s.metadata));
      for (const text of ['a', 'b', 'c']) call.write({ text });
      call.end();
    });
    expect(reply).toMatchObject({ text: 'a,b,c', index: 3 });
    await waitFor(() => trailers !== null);
    expect(trailers!.get('trailer-x-trace')).toEqual(['trace-42']);
  });

  it('bidi streaming: interleaved messages both ways', async () => {
    const { stub } = await setup();
    const call = stub.bidi(md(), { deadline: deadline() });
    const replies: string[] = [];
    let headers: grpc.Metadata | null = null;
    call.on('metadata', (m) => (headers = m));
    const done = new Promise<grpc.Metadata>((resolve, reject) => {
      call.on('status', (s) => resolve(s.metadata));
      call.on('error', reject);
    });
    call.on('data', (r: { text: string }) => replies.push(r.text));
    call.write({ text: 'one' });
    await waitFor(() => replies.length === 1, 10_000, 10, 'first bidi reply');
    call.write({ text: 'two' });
    call.write({ text: 'three' });
    call.end();
    const trailers = await done;
    expect(replies).toEqual(['one', 'two', 'three']);
    expect(headers!.get('echo-x-bin-bin')).toHaveLength(1);
    expect(trailers.get('trailer-x-trace')).toEqual(['trace-42']);
  });

  it('error statuses and their trailers come back unchanged', async () => {
    const { stub } = await setup();
    const err = await unary(stub, { text: 'fail' }, md()).catch((e: grpc.ServiceError) => e);
    expect(err).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, details: 'asked to fail' });
    expect((err as grpc.ServiceError).metadata.get('trailer-x-trace')).toEqual(['trace-42']);
  });

  it('a deadline shorter than the call fails it with DEADLINE_EXCEEDED', async () => {
    const { stub } = await setup();
    await unary(stub, { text: 'warm-up' });
    const started = Date.now();
    const err = await unary(stub, { text: 'slow', delayMs: 3000 }, new grpc.Metadata(), { deadline: Date.now() + 300 }).catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(2500);
  });
});

describe('proxy path edge cases', () => {
  it("a client cancelling a proxied stream cancels the replica's call", async () => {
    const { replicas, balancer } = await cluster({ granularity: 'per-request' }, ['A']);
    const stub = client(balancer.address);
    const call = stub.serverStream({ text: 'long', count: 1000, delayMs: 20 });
    const got: number[] = [];
    call.on('data', (r: { index: number }) => {
      got.push(r.index);
      if (got.length === 3) call.cancel();
    });
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      call.on('error', () => undefined);
      call.on('status', resolve);
    });
    expect(status.code).toBe(grpc.status.CANCELLED);
    expect(replicas[0]!.stats.byMethod['ServerStream']).toBe(1);
    // The replica's call ends (its interceptor counts it out) long before its 1000 x 20 ms.
    await waitFor(() => replicas[0]!.replica.meter.inFlight === 0, 5000, 10, 'replica call to end');
    expect(got.length).toBeLessThan(50);
  });

  it('a proxied call to a replica that stopped answering fails with UNAVAILABLE naming it', async () => {
    const { balancer } = await cluster({ granularity: 'per-request' }, []);
    // A hung replica: its process (and control stream) stays, its data port
    // keeps its sockets open and answers nothing (a frozen relay in front of it).
    const { server, address } = await startEchoServer('H');
    const relay = await FaultRelay.start(address);
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address: relay.address });
    cleanups.push(async () => {
      await replica.detach('test over');
      server.forceShutdown();
      await relay.close();
    });
    await waitFor(() => balancer.registry.groups.get('echo')!.members.size === 1);
    relay.freeze();
    const started = Date.now();
    const err = (await unary(client(balancer.address), { text: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 20_000 }).catch((e) => e)) as grpc.ServiceError;
    expect(grpc.status[err.code]).toBe('UNAVAILABLE');
    expect(err.details).toContain(`rebind: replica ${relay.address}`);
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);
});

describe('per-session granularity', () => {
  it('exactly one forward per client; every later call goes straight to its replica', async () => {
    const { balancer, replicas } = await cluster({ granularity: 'per-session', strategy: 'round_robin' }, ['A', 'B']);
    const followed = countClientForwards();
    const stubs = [0, 1, 2, 3].map(() => client(balancer.address, clientOptions()));
    const servedBy: string[][] = stubs.map(() => []);
    for (let round = 0; round < 10; round++) {
      for (const [i, stub] of stubs.entries()) servedBy[i]!.push((await unary(stub, { text: `r${round}` })).servedBy);
    }
    expect(counters(balancer).forwards).toBe(4);
    expect(followed.count).toBe(4);
    expect(counters(balancer).proxiedCalls).toBe(0);
    expect(replicas[0]!.stats.calls + replicas[1]!.stats.calls).toBe(40);
    for (const served of servedBy) expect(new Set(served).size).toBe(1);
    // Round-robin binding spreads the four clients two and two.
    expect(servedBy.map((s) => s[0]).sort()).toEqual(['A', 'A', 'B', 'B']);
  });
});

describe('concurrent first calls', () => {
  it("a client's racing first calls are all forwarded to the same replica", async () => {
    const { balancer, replicas } = await cluster({ granularity: 'per-session', strategy: 'round_robin' }, ['A', 'B']);
    const followed = countClientForwards();
    const stub = client(balancer.address, clientOptions());
    const served = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => unary(stub, { text: `race${i}` }).then((r) => r.servedBy)));
    expect(new Set(served).size).toBe(1);
    expect(followed.count).toBe(1);
    expect(replicas[0]!.stats.calls + replicas[1]!.stats.calls).toBe(6);
  });
});

describe('per-request granularity', () => {
  it('a client that understands weighted bindings is bound to every member and spreads its calls itself, directly (no proxy hop)', async () => {
    const { balancer, replicas } = await cluster({ granularity: 'per-request', strategy: 'round_robin' }, ['A', 'B']);
    const stub = client(balancer.address, clientOptions());
    const served: string[] = [];
    for (let i = 0; i < 20; i++) served.push((await unary(stub, { text: `c${i}` })).servedBy);
    expect(counters(balancer).proxiedCalls).toBe(0);
    expect(counters(balancer).forwards).toBe(1);
    // Equal weights (calls_per_s metric): sequential calls alternate exactly.
    expect([replicas[0]!.stats.calls, replicas[1]!.stats.calls]).toEqual([10, 10]);
    for (let i = 1; i < served.length; i++) expect(served[i]).not.toBe(served[i - 1]);
  });

  it('every call of a plain client passes through the balancer and is spread by the strategy', async () => {
    const { balancer, replicas } = await cluster({ granularity: 'per-request', strategy: 'round_robin' }, ['A', 'B']);
    const stub = client(balancer.address);
    const served: string[] = [];
    for (let i = 0; i < 20; i++) served.push((await unary(stub, { text: `c${i}` })).servedBy);
    expect(counters(balancer).proxiedCalls).toBe(20);
    expect(counters(balancer).forwards).toBe(0);
    expect(replicas[0]!.stats.calls).toBe(10);
    expect(replicas[1]!.stats.calls).toBe(10);
    // Round robin alternates.
    for (let i = 1; i < served.length; i++) expect(served[i]).not.toBe(served[i - 1]);
  });
});

describe('the servant is untouched', () => {
  it('the replica serves calls with the very implementation object registered without rebind', async () => {
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin' }]);
    cleanups.push(() => balancer.stop());
    // A servant with state, as an application would write it.
    class Servant {
      served = 0;
      Unary(call: grpc.ServerUnaryCall<{ text: string }, unknown>, callback: grpc.sendUnaryData<unknown>) {
        this.served++;
        callback(null, { text: call.request.text, servedBy: 'servant', index: this.served });
      }
    }
    const servant = new Servant();
    const server = new grpc.Server();
    server.addService(EchoService.service, servant as never);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    cleanups.push(() => server.forceShutdown());
    const handlers = (server as unknown as { handlers: Map<string, { func: unknown }> }).handlers;
    const before = new Map([...handlers].map(([path, h]) => [path, h.func]));
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${port}` });
    cleanups.push(() => replica.detach());
    // attach() wrapped nothing: every application handler is grpc-js's own, and the
    // only handler it added is its ORCA load-report service.
    for (const [path, func] of before) expect(handlers.get(path)!.func).toBe(func);
    expect([...handlers.keys()].filter((p) => !before.has(p))).toEqual([ORCA_SERVICE_PATH]);
    const reply = await unary(client(balancer.address, clientOptions()), { text: 'x' });
    expect(reply).toMatchObject({ servedBy: 'servant', index: 1 });
    expect(servant.served).toBe(1);
  });
});

describe('forward loops', () => {
  it('end after a bounded number of forwards with UNAVAILABLE naming the hops', async () => {
    // Two servers that forward every call to each other.
    const servers: grpc.Server[] = [];
    const addresses: string[] = [];
    const targets: string[] = [];
    for (let i = 0; i < 2; i++) {
      const index = i;
      const server = new grpc.Server({
        interceptors: [
          (_method, call) =>
            new grpc.ServerInterceptingCall(call, {
              start: (next) =>
                next({
                  onReceiveMetadata: () => {
                    const trailers = new grpc.Metadata();
                    trailers.set(FORWARD_TRAILER, targets[index]!);
                    trailers.set(RETRY_PUSHBACK_TRAILER, '0');
                    call.sendStatus({ code: FORWARD_STATUS, details: 'loop', metadata: trailers });
                  },
                }),
            }),
        ],
      });
      server.addService(EchoService.service, { Unary: () => undefined } as never);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
      );
      servers.push(server);
      addresses.push(`127.0.0.1:${port}`);
      cleanups.push(() => server.forceShutdown());
    }
    targets.push(addresses[1]!, addresses[0]!);
    const stub = client(addresses[0]!, clientOptions({ maxForwards: 3 }));
    const err = (await unary(stub, { text: 'loop' }).catch((e: grpc.ServiceError) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(err.details).toContain('gave up after 4 forwards (limit 3)');
    expect(err.details).toContain(`${addresses[0]} -> ${addresses[1]} -> ${addresses[0]} -> ${addresses[1]} -> ${addresses[0]}`);
  });
});

describe('replica failure', () => {
  it('a client whose replica died re-binds through the balancer', async () => {
    const { balancer, replicas } = await cluster({ granularity: 'per-session', strategy: 'round_robin' }, ['A', 'B']);
    const stub = client(balancer.address, clientOptions());
    const first = (await unary(stub, { text: 'one' })).servedBy;
    const dead = replicas.find((r) => r.name === first)!;
    await dead.replica.detach('crash test');
    dead.server.forceShutdown();
    await waitFor(() => balancer.registry.groups.get('echo')!.members.size === 1, 5000, 20, 'member removal');
    const second = await unary(stub, { text: 'two' }, new grpc.Metadata(), { deadline: Date.now() + 5000 });
    expect(second.servedBy).not.toBe(first);
    expect(counters(balancer).forwards).toBe(2);
  });
});

describe('replica control stream', () => {
  it('re-attaches with backoff after the balancer restarts', async () => {
    const first = await startBalancer([{ name: 'echo', reportIntervalMs: 100 }]);
    const port = first.controlAddress.split(':').pop();
    const r = await startReplica(first, 'A');
    cleanups.push(() => stopReplica(r));
    expect(r.replica.attachments).toBe(1);
    await first.stop();
    await waitFor(() => r.replica.state === 'connecting', 5000, 10, 'replica to notice');
    const second = await startBalancer([{ name: 'echo', reportIntervalMs: 100 }], { controlListen: `127.0.0.1:${port}` });
    cleanups.push(() => second.stop());
    await waitFor(() => second.registry.groups.get('echo')!.members.size === 1, 10_000, 20, 're-attachment');
    // The balancer registers the member before its Attached message reaches the replica.
    await waitFor(() => r.replica.attachments === 2, 5000, 10, 'the replica to see its second attachment');
    expect(r.replica.state).toBe('attached');
    await waitFor(() => [...second.registry.groups.get('echo')!.members.values()][0]!.reports > 0, 5000, 20, 'reports');
  });

  it('detaches when the server shuts down', async () => {
    const { balancer, replicas } = await cluster({}, ['A', 'B']);
    const removed: string[] = [];
    balancer.registry.listen({ memberRemoved: (_g, _m, reason) => removed.push(reason) });
    await new Promise<void>((resolve) => replicas[0]!.server.tryShutdown(() => resolve()));
    await waitFor(() => balancer.registry.groups.get('echo')!.members.size === 1, 5000, 20, 'removal');
    expect(removed).toEqual(['detached by the replica: server shutting down']);
    expect(replicas[0]!.replica.state).toBe('detached');
  });

  it('is removed from the group when the replica detaches', async () => {
    const { balancer, replicas } = await cluster({}, ['A', 'B']);
    await replicas[0]!.replica.detach('leaving');
    await waitFor(() => balancer.registry.groups.get('echo')!.members.size === 1, 5000, 20, 'removal');
  });
});

describe('on-demand granularity', () => {
  it('rebalances 4 equal clients from A onto a late B within 5 report intervals, then stays put', async () => {
    const intervalMs = 250;
    const balancer = await startBalancer([{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: intervalMs, dampening: 0.5 }]);
    cleanups.push(() => balancer.stop());
    const a = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(a));
    const stubs = [0, 1, 2, 3].map(() => client(balancer.address, clientOptions()));
    const lastServedBy: string[] = ['', '', '', ''];
    let running = true;
    let failures = 0;
    const loops = stubs.map(async (stub, i) => {
      // Equal rates: one call every 20 ms per client.
      while (running) {
        const started = Date.now();
        try {
          lastServedBy[i] = (await unary(stub, { text: `c${i}` })).servedBy;
        } catch {
          failures++;
        }
        await sleep(Math.max(0, 20 - (Date.now() - started)));
      }
    });
    cleanups.push(async () => {
      running = false;
      await Promise.all(loops);
    });
    await waitFor(() => lastServedBy.every((s) => s === 'A'), 5000, 10, 'all clients on A');
    await sleep(2 * intervalMs);
    const b = await startReplica(balancer, 'B');
    cleanups.push(() => stopReplica(b));
    const group = balancer.registry.groups.get('echo')!;
    const memberB = [...group.members.values()].find((m) => m.address === b.address)!;
    const balanced = () => lastServedBy.filter((s) => s === 'A').length === 2 && lastServedBy.filter((s) => s === 'B').length === 2;
    await waitFor(balanced, 20_000, 5, 'two clients on each replica');
    // Counted in B's own report intervals, so a slow machine does not change the verdict.
    expect(memberB.reports).toBeLessThanOrEqual(5);
    const forwardsAtBalance = group.counters.forwards;
    const advisoriesAtBalance = group.counters.advisories;
    const reportsAtBalance = memberB.reports;
    const followed = countClientForwards();
    await waitFor(() => memberB.reports >= reportsAtBalance + 10, 30_000, 20, '10 more report intervals');
    expect({ advisories: group.counters.advisories, forwards: group.counters.forwards, followed: followed.count }).toEqual({
      advisories: advisoriesAtBalance,
      forwards: forwardsAtBalance,
      followed: 0,
    });
    expect(balanced()).toBe(true);
    expect(failures).toBe(0);
  });
});
