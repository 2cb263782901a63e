/**
 * Key rotation strands no client (issue 14): a client bound before the
 * balancer's vouching key rotated (once, twice) follows moves, piggy-backed
 * bindings and offers signed by the newest key, through the key chain the
 * replicas send beside each voucher; a chain endorsed by a key the client
 * never pinned is refused; a voucher refused only for its key does not make
 * the client avoid the replica. Real gRPC over loopback.
 */
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server as NetServer } from 'node:net';
import { generateKeyPairSync, sign } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { attach, clientEvents, clientIdOf, clientOptions, type Balancer } from '../../src/index';
import { rotateRing } from '../../src/balancer/keyring';
import { Voucher } from '../../src/balancer/vouch';
import {
  AVOID_HEADER,
  BALANCER_KEY_TRAILER,
  clientUserAgent,
  endorsePayload,
  FORWARD_REASON_TRAILER,
  FORWARD_STATUS,
  FORWARD_TRAILER,
  formatKeyChain,
  KEY_CHAIN_TRAILER,
  RETRY_PUSHBACK_TRAILER,
  VOUCH_TRAILER,
  vouchPayload,
} from '../../src/common/wire';
import { UNKNOWN_KEY } from '../../src/interceptors/vouch-check';
import { echoImplementation, startEchoServer, type EchoClient } from '../support/echo';
import { echoClient, sleep, startBalancer, startReplica, stopReplica, unary, waitFor, type TestReplica } from '../support/cluster';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

/** What clients in this process report: bindings followed, refusals, bindings dropped. */
function listen(): { forwarded: { from: string; to: string; reason: string }[]; refused: string[]; unbound: string[] } {
  const seen = { forwarded: [] as { from: string; to: string; reason: string }[], refused: [] as string[], unbound: [] as string[] };
  const listener = {
    forwarded: (from: string, to: string, reason: string) => void seen.forwarded.push({ from, to, reason }),
    refused: (_from: string, to: string, why: string) => void seen.refused.push(`${to}: ${why}`),
    unbound: (from: string, reason: string) => void seen.unbound.push(`${from}: ${reason}`),
  };
  clientEvents.add(listener);
  cleanups.push(() => void clientEvents.delete(listener));
  return seen;
}

/** Rebind client options; `sets` false: a client that knows single forwards only (no rebind-sets/1). */
function options(sets: boolean): grpc.ChannelOptions {
  const o = clientOptions();
  if (!sets) o['grpc.secondary_user_agent'] = clientUserAgent(clientIdOf(o)!);
  return o;
}

/** Rotates the balancer's ring `times` times: in process (rotate) and as a shared ring would arrive (load). */
function rotate(balancer: Balancer, times: number): void {
  for (let i = 0; i < times; i++) {
    if (i % 2 === 0) balancer.voucher.rotate();
    else balancer.voucher.load(rotateRing(balancer.voucher.state));
  }
}

/** Clients calling every 20 ms until stopped; remembers who served each last; counts failures. */
function load(stubs: EchoClient[]): { lastServedBy: string[]; failures: string[]; stop: () => Promise<void> } {
  const lastServedBy = stubs.map(() => '');
  const failures: string[] = [];
  let running = true;
  const loops = stubs.map(async (stub, i) => {
    while (running) {
      const started = Date.now();
      try {
        lastServedBy[i] = (await unary(stub, { text: `c${i}` })).servedBy;
      } catch (err) {
        failures.push((err as Error).message);
      }
      await sleep(Math.max(0, 20 - (Date.now() - started)));
    }
  });
  const stop = async () => {
    running = false;
    await Promise.all(loops);
  };
  cleanups.push(stop);
  return { lastServedBy, failures, stop };
}

describe('a client bound before a key rotation', () => {
  it.each([
    { rotations: 1, sets: false, path: 'a forward' },
    { rotations: 2, sets: false, path: 'a forward' },
    { rotations: 1, sets: true, path: 'a piggy-backed binding' },
    { rotations: 2, sets: true, path: 'a piggy-backed binding' },
  ])('follows a planned move by $path signed with the newest key after $rotations rotation(s): no refusal, no failed call', async ({ rotations, sets }) => {
    const intervalMs = 250;
    const balancer = await startBalancer([{ name: 'echo', granularity: 'on-demand', strategy: 'minimum_dispersion', reportIntervalMs: intervalMs, dampening: 0.5 }]);
    cleanups.push(() => balancer.stop());
    const a = await startReplica(balancer, 'A');
    cleanups.push(() => stopReplica(a));
    const seen = listen();
    const stubs = [0, 1, 2, 3].map(() => echoClient(balancer.address, options(sets)));
    for (const s of stubs) cleanups.push(() => s.close());
    const running = load(stubs);
    await waitFor(() => running.lastServedBy.every((s) => s === 'A'), 5000, 10, 'all clients on A');
    const pinnedAtBind = balancer.voucher.publicKeys;
    rotate(balancer, rotations);
    expect(balancer.voucher.publicKeys).toHaveLength(1 + rotations);
    expect(pinnedAtBind).not.toContain(balancer.voucher.publicKey);
    const b = await startReplica(balancer, 'B');
    cleanups.push(() => stopReplica(b));
    const balanced = () => running.lastServedBy.filter((s) => s === 'A').length === 2 && running.lastServedBy.filter((s) => s === 'B').length === 2;
    await waitFor(balanced, 20_000, 5, 'two clients on each replica');
    await running.stop();
    expect(running.failures).toEqual([]);
    expect(seen.refused).toEqual([]);
    // The clients moved from A to B on the replica's word (advisory), not by going back to the balancer.
    const moves = seen.forwarded.filter((f) => f.reason === 'advisory');
    expect(moves.length).toBeGreaterThanOrEqual(2);
    for (const m of moves) expect(sets ? m.to : `${m.to}=1000`).toContain(`${b.address}=`);
    expect(seen.unbound).toEqual([]);
  });

  it('of a per-request group takes the new offer piggy-backed by its members after two rotations', async () => {
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-request', strategy: 'round_robin', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    const replicas: TestReplica[] = [];
    for (const name of ['A', 'B']) {
      const r = await startReplica(balancer, name);
      replicas.push(r);
      cleanups.push(() => stopReplica(r));
    }
    const seen = listen();
    const stub = echoClient(balancer.address, options(true));
    cleanups.push(() => stub.close());
    const running = load([stub]);
    await waitFor(() => seen.forwarded.some((f) => f.to.split(',').length === 2), 5000, 10, 'client bound to A and B');
    rotate(balancer, 2);
    const c = await startReplica(balancer, 'C');
    cleanups.push(() => stopReplica(c));
    await waitFor(() => seen.forwarded.some((f) => f.reason === 'advisory' && f.to.split(',').length === 3), 10_000, 10, 'the offer naming A, B and C taken');
    await running.stop();
    expect(running.failures).toEqual([]);
    expect(seen.refused).toEqual([]);
    expect(balancer.registry.groups.get('echo')!.counters.proxiedCalls).toBe(0);
  });
});

describe('a forged key chain', () => {
  it('a voucher signed by a key endorsed by a key the client never pinned is refused, and the client is not moved', async () => {
    let connections = 0;
    const attacker: NetServer = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => attacker.close(() => r(undefined))));
    const attackerAddress = `127.0.0.1:${(attacker.address() as { port: number }).port}`;
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 }]);
    cleanups.push(() => balancer.stop());
    balancer.voucher.rotate();
    // The attacker's key, "endorsed" by an accomplice key, and an endorsement lifted from the real chain.
    const key = generateKeyPairSync('ed25519');
    const accomplice = generateKeyPairSync('ed25519');
    const attackerKey = key.publicKey.export({ format: 'der', type: 'spki' }).toString('base64url');
    const chain = formatKeyChain([
      { publicKey: attackerKey, signature: sign(null, endorsePayload(attackerKey), accomplice.privateKey).toString('base64url') },
      ...balancer.voucher.chain.split(',').map((entry) => ({ publicKey: entry.split('.')[0]!, signature: entry.split('.')[1]! })),
    ]);
    // A compromised replica, attached first (round robin binds the first client to it).
    await scriptedServer('rogue', () => {
      const notAfter = Date.now() + 60_000;
      return {
        [FORWARD_TRAILER]: attackerAddress,
        [RETRY_PUSHBACK_TRAILER]: '0',
        [FORWARD_REASON_TRAILER]: 'advisory',
        [VOUCH_TRAILER]: `${notAfter}.${Buffer.from('echo').toString('base64url')}.${sign(null, vouchPayload('echo', attackerAddress, notAfter), key.privateKey).toString('base64url')}`,
        [KEY_CHAIN_TRAILER]: chain,
      };
    }, balancer);
    const honest = await startReplica(balancer, 'honest');
    cleanups.push(() => stopReplica(honest));
    const seen = listen();
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    const reply = await unary(stub, { text: 'hello' });
    expect(reply.servedBy).toBe('honest');
    expect(seen.refused).toEqual([`${attackerAddress}: ${UNKNOWN_KEY} (nor any key its key chain endorses)`]);
    expect(seen.forwarded.map((f) => f.to)).not.toContain(attackerAddress);
    await sleep(200);
    expect(connections).toBe(0);
  });
});

describe('a voucher refused only for its key', () => {
  it('does not make the client avoid the replica that sent it', async () => {
    const signer = new Voucher();
    const unknown = new Voucher();
    const r2 = await scriptedServer('R2', (n) => (n === 2 ? { [FORWARD_TRAILER]: 'balancer', [FORWARD_REASON_TRAILER]: 'recall', [RETRY_PUSHBACK_TRAILER]: '0' } : null));
    // R forwards the first call to R2 with a voucher of a key the client never saw (and no chain); serves the rest.
    const r = await scriptedServer('R', (n) =>
      n === 1
        ? { [FORWARD_TRAILER]: r2.address, [FORWARD_REASON_TRAILER]: 'advisory', [RETRY_PUSHBACK_TRAILER]: '0', [VOUCH_TRAILER]: unknown.vouch('echo', r2.address, 60_000) }
        : null,
    );
    // A balancer that binds to R first, then to R2.
    const avoids: string[] = [];
    const balancer = await scriptedServer('balancer', (n, metadata) => {
      avoids.push(String(metadata.get(AVOID_HEADER)[0] ?? ''));
      const to = n === 1 ? r.address : r2.address;
      return {
        [FORWARD_TRAILER]: to,
        [FORWARD_REASON_TRAILER]: 'bind',
        [RETRY_PUSHBACK_TRAILER]: '0',
        [VOUCH_TRAILER]: signer.vouch('echo', to, 60_000),
        [BALANCER_KEY_TRAILER]: signer.publicKey,
      };
    });
    const seen = listen();
    const stub = echoClient(balancer.address, clientOptions());
    cleanups.push(() => stub.close());
    // Call 1: balancer -> R, whose forward is refused -> balancer -> R2, which serves it.
    expect((await unary(stub, { text: 'one' })).servedBy).toBe('R2');
    expect(seen.refused).toEqual([`${r2.address}: ${UNKNOWN_KEY}`]);
    // Call 2: R2 sends the client back to the balancer; the channel asks it to avoid R2 (this call's hop), not R.
    expect((await unary(stub, { text: 'two' })).servedBy).toBe('R2');
    expect(avoids).toHaveLength(3);
    expect(avoids[2]!.split(',')).toEqual([r2.address]);
  });
});

/**
 * An Echo server whose calls (numbered from 1) are answered with a forward
 * carrying `script(n, metadata)`'s trailers, or served when it returns null.
 * With `attachTo`, attached to that balancer first: the script then runs in
 * front of rebind's own interceptor (at the network edge, as a compromised
 * process would: rebind's interceptor strips the forwards an application makes).
 */
async function scriptedServer(
  name: string,
  script: (n: number, metadata: grpc.Metadata) => Record<string, string> | null,
  attachTo?: Balancer,
): Promise<{ server: grpc.Server; address: string }> {
  const { server, address } = await startEchoServer(name, echoImplementation(name));
  cleanups.push(() => server.forceShutdown());
  if (attachTo !== undefined) {
    const replica = await attach(server, { balancer: attachTo.controlAddress, group: 'echo', address });
    cleanups.push(() => replica.detach());
  }
  let calls = 0;
  (server as unknown as { interceptors: grpc.ServerInterceptor[] }).interceptors.unshift((_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            const trailers = script(++calls, metadata);
            if (trailers === null) return mdNext(metadata);
            const out = new grpc.Metadata();
            for (const [k, v] of Object.entries(trailers)) out.set(k, v);
            call.sendStatus({ code: FORWARD_STATUS, details: 'scripted forward', metadata: out });
          },
        }),
    }),
  );
  return { server, address };
}
