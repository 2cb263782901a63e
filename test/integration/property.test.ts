/**
 * Property-based tests (fast-check): random and mutated control messages
 * sent to a running balancer, random forward trailers sent to a rebind
 * client, arbitrary strings given to every parser of network input.
 * Properties: nothing throws or crashes, every refusal is a clean gRPC
 * status, the balancer keeps serving, and a client never connects to an
 * address nobody vouched for.
 */
import * as fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Balancer, attach, clientOptions } from '../../src/index';
import { parseHostPort } from '../../src/common/address';
import { parseGrpcTimeoutMs } from '../../src/common/grpc-http2';
import { controlProto } from '../../src/common/proto';
import { identifyCaller, parseAffinityToken } from '../../src/common/wire';
import { validateHello, validateReport } from '../../src/balancer/validate';
import { sanitizeAdvisory } from '../../src/replica/advisory';
import { balancerKey, checkVoucher } from '../../src/interceptors/vouch-check';
import type { BalancerMessage__Output } from '../../src/generated/rebind/v1/BalancerMessage';
import type { ControlClient } from '../../src/generated/rebind/v1/Control';
import { echoImplementation, EchoService, startEchoServer } from '../support/echo';
import { echoClient, startBalancer, unary } from '../support/cluster';
import { answerWithForwards } from '../support/rogue';

const RUNS = Number(process.env['REBIND_PROPERTY_RUNS'] ?? 60);

describe('parsers of network input never throw', () => {
  it('host:port, affinity tokens, user-agents, grpc-timeout, vouchers', () => {
    const key = balancerKey('MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE');
    fc.assert(
      fc.property(fc.string({ maxLength: 400 }), fc.string({ unit: 'binary', maxLength: 100 }), (s, u) => {
        for (const input of [s, u]) {
          const hp = parseHostPort(input);
          expect(typeof hp === 'string' || (hp.port >= 1 && hp.port <= 65535)).toBe(true);
          parseAffinityToken(input);
          identifyCaller(input);
          parseGrpcTimeoutMs(input);
          expect(checkVoucher(key, 'g', '127.0.0.1:1', input)).not.toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('validation of hellos and reports refuses cleanly whatever the fields hold', () => {
    const number = fc.oneof(fc.double(), fc.integer(), fc.constant(Number.NaN), fc.constant(Infinity), fc.constant(-1));
    fc.assert(
      fc.property(
        fc.record({
          protocolVersion: fc.oneof(fc.constant(1), fc.integer()),
          group: fc.string({ maxLength: 300 }),
          address: fc.string({ maxLength: 300 }),
          methods: fc.array(fc.record({ path: fc.string({ maxLength: 50 }), kind: fc.constantFrom('UNARY', 'BIDI_STREAMING', 'CALL_KIND_UNSPECIFIED', 'X') }), { maxLength: 5 }),
          replicaId: fc.string({ maxLength: 200 }),
        }),
        fc.record({
          seq: fc.integer(),
          intervalMs: fc.integer(),
          callsPerS: number,
          inFlight: fc.integer(),
          latencyMs: number,
          eventLoopUtilization: number,
          cpuCores: number,
          custom: number,
          hasCustom: fc.boolean(),
          topClients: fc.array(fc.record({ clientId: fc.string({ maxLength: 80 }), callsPerS: number }), { maxLength: 5 }),
          otherCallsPerS: number,
          forwards: fc.integer(),
          draining: fc.boolean(),
        }),
        (hello, report) => {
          const h = validateHello(hello as never);
          const r = validateReport(report as never, 0);
          for (const refusal of [h, r]) if (refusal !== null) expect(refusal.message.length).toBeGreaterThan(5);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('advisories from the network are trimmed to valid moves', () => {
    fc.assert(
      fc.property(
        fc.record({
          seq: fc.integer(),
          recallAll: fc.boolean(),
          expireMs: fc.integer(),
          moves: fc.array(fc.record({ clientId: fc.string({ maxLength: 80 }), target: fc.string({ maxLength: 80 }), vouch: fc.string({ maxLength: 80 }) }), { maxLength: 20 }),
        }),
        (advisory) => {
          const { advisory: clean } = sanitizeAdvisory(advisory as never);
          for (const m of clean.moves) expect(m.target === '' || typeof parseHostPort(m.target) !== 'string').toBe(true);
          expect(clean.expireMs).toBeGreaterThanOrEqual(1);
        },
      ),
      { numRuns: 1000 },
    );
  });
});

describe('a running balancer fed random control messages', () => {
  let balancer: Balancer;
  let control: ControlClient;
  beforeAll(async () => {
    balancer = await startBalancer([{ name: 'echo', reportIntervalMs: 200 }, { name: 'other', reportIntervalMs: 200 }]);
    control = new (controlProto().rebind.v1.Control)(balancer.controlAddress, grpc.credentials.createInsecure()) as unknown as ControlClient;
  });
  afterAll(async () => {
    control.close();
    await balancer.stop();
  });

  const method = fc.record({ path: fc.constantFrom('/a.B/C', '/rebind.test.Echo/Unary', 'bad', ''), kind: fc.constantFrom('UNARY', 'CALL_KIND_UNSPECIFIED') });
  const message = fc.oneof(
    fc.record({ hello: fc.record({ protocolVersion: fc.constantFrom(1, 2), group: fc.constantFrom('echo', 'other', 'nope', ''), address: fc.constantFrom('127.0.0.1:7001', '127.0.0.1:7002', 'x', '[::1]:9'), methods: fc.array(method, { maxLength: 3 }), replicaId: fc.string({ maxLength: 10 }) }) }),
    fc.record({ report: fc.record({ seq: fc.integer({ min: -5, max: 50 }), intervalMs: fc.integer({ min: -1, max: 5000 }), callsPerS: fc.oneof(fc.double({ noNaN: false }), fc.integer()), topClients: fc.array(fc.record({ clientId: fc.string({ maxLength: 20 }), callsPerS: fc.double() }), { maxLength: 3 }) }) }),
    fc.record({ detach: fc.record({ reason: fc.string({ maxLength: 50 }) }) }),
    fc.constant({}),
  );

  it('answers every sequence with messages or a clean status, and keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(message, { minLength: 1, maxLength: 8 }), async (messages) => {
        const outcome = await new Promise<{ status: grpc.StatusObject | null; received: BalancerMessage__Output[] }>((resolve) => {
          const call = control.attach();
          const received: BalancerMessage__Output[] = [];
          const timer = setTimeout(() => {
            call.cancel();
            resolve({ status: null, received });
          }, 300);
          call.on('data', (m: BalancerMessage__Output) => received.push(m));
          call.on('error', () => undefined);
          call.on('status', (status) => {
            clearTimeout(timer);
            resolve({ status, received });
          });
          for (const m of messages) call.write(m as never);
          call.end();
        });
        if (outcome.status !== null && outcome.status.code !== grpc.status.OK && outcome.status.code !== grpc.status.CANCELLED) {
          expect(outcome.status.details.length).toBeGreaterThan(5);
        }
        for (const m of outcome.received) expect(['attached', 'notice', 'advisory']).toContain(m.body);
      }),
      { numRuns: RUNS },
    );
    // Still serving: a real replica attaches and a client is served.
    const { server, address } = await startEchoServer('after');
    const replica = await attach(server, { balancer: balancer.controlAddress, group: 'echo', address });
    const stub = echoClient(balancer.address, clientOptions());
    try {
      expect((await unary(stub, { text: 'still alive' })).servedBy).toBe('after');
    } finally {
      stub.close();
      await replica.detach();
      server.forceShutdown();
    }
  }, 120_000);
});

describe('a rebind client fed random forward trailers by a hostile replica', () => {
  it('ends every call with a clean status and never connects where the balancer did not vouch', async () => {
    let attackerConnections = 0;
    const attacker = createServer((socket) => {
      attackerConnections++;
      socket.destroy();
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()));
    const attackerAddress = `127.0.0.1:${(attacker.address() as { port: number }).port}`;
    const balancer = await startBalancer([{ name: 'echo', granularity: 'per-session', strategy: 'round_robin', reportIntervalMs: 200 }]);
    // A replica (attached like any other) that answers each call with the trailers the property
    // generates, from the network edge (in front of rebind's interceptor), as a compromised process would.
    let next: Record<string, string> = {};
    const hostile = new grpc.Server();
    hostile.addService(EchoService.service, echoImplementation('hostile'));
    const port = await new Promise<number>((res, rej) => hostile.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const replica = await attach(hostile, { balancer: balancer.controlAddress, group: 'echo', address: `127.0.0.1:${port}` });
    answerWithForwards(hostile, () => next, 'random');
    const printable = fc.string({ unit: fc.integer({ min: 32, max: 126 }).map((c) => String.fromCharCode(c)), maxLength: 60 });
    const trailers = fc.record(
      {
        'rebind-forward': fc.oneof(fc.constant(attackerAddress), fc.constant('balancer'), fc.constant(`127.0.0.1:${port}`), printable),
        'rebind-vouch': fc.oneof(printable, fc.constant(`${Date.now() + 60_000}.AAAA`)),
        'rebind-balancer-key': printable,
        'rebind-forward-reason': printable,
        'grpc-retry-pushback-ms': fc.constantFrom('0', '-1', 'x', '10'),
      },
      { requiredKeys: [] },
    );
    // An honest replica beside it: a client the hostile one turns away can be served there.
    const honest = await startEchoServer('honest');
    const honestReplica = await attach(honest.server, { balancer: balancer.controlAddress, group: 'echo', address: honest.address });
    const outcomes = new Map<string, number>();
    try {
      await fc.assert(
        fc.asyncProperty(trailers, async (t) => {
          next = t as Record<string, string>;
          // A fresh client each run: round-robin binds every other one to the hostile replica.
          const stub = echoClient(balancer.address, clientOptions({ maxForwards: 2 }));
          const result = await unary(stub, { text: 'x' }, new grpc.Metadata(), { deadline: Date.now() + 3000 }).then(
            (reply) => ({ code: grpc.status.OK, details: reply.servedBy }),
            (e: grpc.ServiceError) => ({ code: e.code, details: e.details }),
          );
          stub.close();
          const outcome =
            result.code === grpc.status.OK
              ? `served by ${result.details}`
              : result.code === grpc.status.ABORTED && result.details === 'random'
                ? 'the hostile replica\'s own status'
                : result.code === grpc.status.UNAVAILABLE && result.details.startsWith('rebind: ')
                  ? 'rebind refused the forward'
                  : `unexpected ${grpc.status[result.code]}: ${result.details}`;
          outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
          // Served by the honest replica, the hostile replica's own ABORTED (no forward to follow), or a clean refusal.
          expect(outcome).not.toMatch(/^unexpected/);
        }),
        { numRuns: RUNS },
      );
    } finally {
      await honestReplica.detach();
      honest.server.forceShutdown();
      await replica.detach();
      hostile.forceShutdown();
      await balancer.stop();
      await new Promise((r) => attacker.close(() => r(undefined)));
    }
    expect(attackerConnections).toBe(0);
    // The recovery path was taken, not only refusals: some calls reached the honest replica.
    expect(outcomes.get('served by honest') ?? 0, JSON.stringify([...outcomes])).toBeGreaterThan(0);
    expect(outcomes.get('rebind refused the forward') ?? 0, JSON.stringify([...outcomes])).toBeGreaterThan(0);
  }, 120_000);
});
