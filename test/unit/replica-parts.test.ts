import * as grpc from '@grpc/grpc-js';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { VirtualAction, VirtualTimeScheduler } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { INFRASTRUCTURE_SERVICES, serverMethods } from '../../src/index';
import { sanitizeAdvisory } from '../../src/replica/advisory';
import { ForwardTable } from '../../src/replica/forward-table';
import { DEFAULT_MAX_TRACKED_CLIENTS, LoadMeter } from '../../src/replica/load-meter';
import {
  createOrcaService,
  DEFAULT_ORCA_BLOCKED_TIMEOUT_MS,
  DEFAULT_ORCA_MAX_STREAMS,
  MAX_ORCA_INTERVAL_MS,
  orcaIntervalMs,
  orcaServiceDefinition,
  orcaSettings,
} from '../../src/replica/orca';
import { RefusalCounter } from '../../src/replica/refusals';
import { echoImplementation, EchoService } from '../support/echo';
import { healthImplementation, healthService } from '../support/infra-services';

const NO_OFFER = { offerBinding: '', offerVouch: '', offerExpireMs: 0 };

describe('forward table', () => {
  it('forwards an advised client once, then serves it', () => {
    let now = 0;
    const table = new ForwardTable(() => now);
    table.apply({ seq: 1, moves: [{ clientId: 'client-one', target: '10.0.0.2:80', vouch: '', binding: '', bindingVouch: '' }], recallAll: false, expireMs: 1000, ...NO_OFFER });
    expect(table.take('client-two')).toBeNull();
    expect(table.take('client-one')).toEqual({ target: '10.0.0.2:80', reason: 'advisory' });
    expect(table.take('client-one')).toBeNull();
  });
  it('drops a move the client did not use before it expired', () => {
    let now = 0;
    const table = new ForwardTable(() => now);
    table.apply({ seq: 1, moves: [{ clientId: 'client-one', target: '', vouch: '', binding: '', bindingVouch: '' }], recallAll: false, expireMs: 100, ...NO_OFFER });
    now = 101;
    table.sweep();
    expect(table.pending).toBe(0);
    expect(table.expired).toBe(1);
    expect(table.take('client-one')).toBeNull();
  });
  it('an empty target means back to the balancer; recall and drain apply to every rebind client', () => {
    const table = new ForwardTable(() => 0);
    table.apply({ seq: 1, moves: [{ clientId: 'client-one', target: '', vouch: '', binding: '', bindingVouch: '' }], recallAll: false, expireMs: 100, ...NO_OFFER });
    expect(table.take('client-one')).toEqual({ target: 'balancer', reason: 'advisory' });
    table.apply({ seq: 2, moves: [], recallAll: true, expireMs: 100, ...NO_OFFER });
    expect(table.take(null)).toEqual({ target: 'balancer', reason: 'recall' });
    table.draining = true;
    expect(table.take('anyone-123')).toEqual({ target: 'balancer', reason: 'drain' });
  });
});

describe('forward table: weighted bindings', () => {
  const SET = '10.0.0.2:80=500,10.0.0.3:80=500';
  const move = { clientId: 'client-one', target: '10.0.0.2:80', vouch: 'v-target', binding: SET, bindingVouch: 'v-set' };
  it('gives a client that understands sets its new binding to piggy-back, and others the forward', () => {
    const table = new ForwardTable(() => 0);
    table.apply({ seq: 1, moves: [move, { ...move, clientId: 'client-two' }], recallAll: false, expireMs: 1000, ...NO_OFFER });
    const piggy = table.take('client-one', true);
    expect(piggy).toMatchObject({ kind: 'move', clientId: 'client-one', binding: SET, vouch: 'v-set' });
    expect(table.take('client-two', false)).toEqual({ target: '10.0.0.2:80', reason: 'advisory', vouch: 'v-target' });
  });
  it('puts a move back when the call that carried it failed, and not when a newer move came meanwhile', () => {
    const table = new ForwardTable(() => 0);
    table.apply({ seq: 1, moves: [move], recallAll: false, expireMs: 1000, ...NO_OFFER });
    const piggy = table.take('client-one', true);
    expect(table.take('client-one', true)).toBeNull();
    table.settle(piggy as never, false);
    const again = table.take('client-one', true);
    expect(again).toMatchObject({ kind: 'move', binding: SET });
    table.apply({ seq: 2, moves: [{ ...move, binding: '10.0.0.4:80=1000', target: '10.0.0.4:80' }], recallAll: false, expireMs: 1000, ...NO_OFFER });
    table.settle(again as never, false);
    expect(table.take('client-one', true)).toMatchObject({ binding: '10.0.0.4:80=1000' });
  });
  it('offers the offer once per client and version, only to clients that understand sets, and not once expired', () => {
    let now = 0;
    const table = new ForwardTable(() => now, 2);
    table.apply({ seq: 1, moves: [], recallAll: true, expireMs: 1000, offerBinding: SET, offerVouch: 'v1', offerExpireMs: 500 });
    // Per-request: a plain rebind client is recalled; one that understands sets is served and offered.
    expect(table.take('client-old', false)).toEqual({ target: 'balancer', reason: 'recall' });
    const offer = table.take('client-one', true);
    expect(offer).toMatchObject({ kind: 'offer', binding: SET, vouch: 'v1', version: 1 });
    table.settle(offer as never, false);
    expect(table.take('client-one', true)).toMatchObject({ kind: 'offer' });
    table.settle(offer as never, true);
    expect(table.take('client-one', true)).toBeNull();
    // Vouched again with the same binding: nothing new for who has it, the new voucher for others.
    table.apply({ seq: 2, moves: [], recallAll: true, expireMs: 1000, offerBinding: SET, offerVouch: 'v2', offerExpireMs: 500 });
    expect(table.take('client-one', true)).toBeNull();
    expect(table.take('client-two', true)).toMatchObject({ vouch: 'v2', version: 1 });
    // A new binding is offered to everyone again.
    table.apply({ seq: 3, moves: [], recallAll: true, expireMs: 1000, offerBinding: '10.0.0.2:80=1000', offerVouch: 'v3', offerExpireMs: 500 });
    const second = table.take('client-one', true);
    expect(second).toMatchObject({ binding: '10.0.0.2:80=1000', version: 2 });
    // Bounded: the third client offered forgets the least recently offered one.
    table.settle(second as never, true);
    table.settle(table.take('client-two', true) as never, true);
    table.settle(table.take('client-333', true) as never, true);
    expect(table.offeredCount).toBe(2);
    expect(table.offeredForgotten).toBe(1);
    now = 501;
    expect(table.take('client-444', true)).toBeNull();
    table.apply({ seq: 4, moves: [], recallAll: false, expireMs: 1000, ...NO_OFFER });
    expect(table.offerBinding).toBeNull();
  });
});

describe('advisory sanitizing on the replica', () => {
  it('keeps valid moves and names the bad ones', () => {
    const { advisory, problems } = sanitizeAdvisory({
      seq: 1,
      recallAll: false,
      expireMs: 0,
      ...NO_OFFER,
      moves: [
        { clientId: 'client-good', target: '127.0.0.1:5', vouch: '', binding: '', bindingVouch: '' },
        { clientId: '!', target: '127.0.0.1:5', vouch: '', binding: '', bindingVouch: '' },
        { clientId: 'client-bad-target', target: 'not an address', vouch: '', binding: '', bindingVouch: '' },
      ],
    });
    expect(advisory.moves).toEqual([{ clientId: 'client-good', target: '127.0.0.1:5', vouch: '', binding: '', bindingVouch: '' }]);
    expect(advisory.expireMs).toBe(5000);
    expect(problems).toHaveLength(3);
  });
  it('drops a move with a malformed binding and an offer with a malformed binding or expiry', () => {
    const base = { seq: 1, recallAll: false, expireMs: 100 };
    const bad = sanitizeAdvisory({
      ...base,
      moves: [{ clientId: 'client-good', target: '127.0.0.1:5', vouch: '', binding: '127.0.0.1:5=999', bindingVouch: '' }],
      offerBinding: '127.0.0.1:5=1000,127.0.0.1:5=1000',
      offerVouch: 'x',
      offerExpireMs: 100,
    });
    expect(bad.advisory.moves).toEqual([]);
    expect(bad.advisory.offerBinding).toBe('');
    expect(bad.problems.join('; ')).toMatch(/add up to 999.*names 127.0.0.1:5 twice/);
    const noExpiry = sanitizeAdvisory({ ...base, moves: [], offerBinding: '127.0.0.1:5=1000', offerVouch: 'x', offerExpireMs: 0 });
    expect(noExpiry.advisory.offerBinding).toBe('');
    expect(noExpiry.problems[0]).toMatch(/offer_expire_ms 0/);
    const good = sanitizeAdvisory({ ...base, moves: [], offerBinding: '127.0.0.1:5=1000', offerVouch: 'x', offerExpireMs: 10 });
    expect(good.advisory.offerBinding).toBe('127.0.0.1:5=1000');
    expect(good.problems).toEqual([]);
  });
});

describe('load meter', () => {
  it('reports calls/s per interval, in flight, latency and the busiest clients', () => {
    const meter = new LoadMeter(0);
    for (let i = 0; i < 30; i++) meter.callStarted('client-aaaa');
    for (let i = 0; i < 10; i++) meter.callStarted('client-bbbb');
    for (let i = 0; i < 10; i++) meter.callStarted(null);
    for (let i = 0; i < 48; i++) meter.callEnded(2);
    meter.forwarded();
    const s = meter.snapshot(500, 1, 7, false);
    expect(s.intervalMs).toBe(500);
    expect(s.callsPerS).toBe(100); // 50 calls in 0.5 s
    expect(s.inFlight).toBe(2);
    expect(s.latencyMs).toBe(2);
    expect(s.topClients).toEqual([{ clientId: 'client-aaaa', callsPerS: 60, sets: false }]);
    const m2 = new LoadMeter(0);
    m2.callStarted('client-sets', true);
    m2.callStarted('client-sets', false);
    m2.callStarted('client-plain', false);
    expect(m2.snapshot(1000, 5, undefined, false).topClients).toEqual([
      { clientId: 'client-sets', callsPerS: 2, sets: true },
      { clientId: 'client-plain', callsPerS: 1, sets: false },
    ]);
    expect(s.otherCallsPerS).toBe(40);
    expect(s.forwards).toBe(1);
    expect(s).toMatchObject({ custom: 7, hasCustom: true });
    // The next interval starts from zero but keeps the calls still in flight.
    const next = meter.snapshot(1500, 5, undefined, false);
    expect(next).toMatchObject({ callsPerS: 0, inFlight: 2, topClients: [], forwards: 0, hasCustom: false });
  });
});

describe('load meter bounds', () => {
  it('tracks at most maxTrackedClients distinct clients per interval; the rest are other calls, counted', () => {
    const refusals: string[] = [];
    const meter = new LoadMeter(0, { maxTrackedClients: 1000, refused: (reason) => refusals.push(reason) });
    // 100k distinct ids with no report in between (the control stream is down: nobody takes a snapshot).
    for (let i = 0; i < 100_000; i++) meter.callStarted(`client-${i}`);
    // An already tracked client is still counted as itself.
    for (let i = 0; i < 10; i++) meter.callStarted('client-0');
    // The map itself: a report listing every client shows what it holds.
    const probe = new LoadMeter(0, { maxTrackedClients: 1000 });
    for (let i = 0; i < 100_000; i++) probe.callStarted(`client-${i}`);
    expect(probe.snapshot(1000, 1_000_000, undefined, false).topClients).toHaveLength(1000);
    expect(meter.trackedClients).toBe(1000);
    expect(refusals.length).toBe(99_000);
    expect(new Set(refusals)).toEqual(new Set(['meter_clients_untracked']));
    const s = meter.snapshot(1000, 1_000_000, undefined, false);
    expect(s.topClients).toHaveLength(1000);
    expect(s.topClients?.[0]).toEqual({ clientId: 'client-0', callsPerS: 11, sets: false });
    expect(s.callsPerS).toBe(100_010);
    expect(s.otherCallsPerS).toBe(99_000);
    // A new interval starts empty and is capped again.
    expect(meter.trackedClients).toBe(0);
    for (let i = 0; i < 5000; i++) meter.callStarted(`again-${i}`);
    expect(meter.trackedClients).toBe(1000);
  });

  it('has a default cap', () => {
    const meter = new LoadMeter(0);
    for (let i = 0; i < DEFAULT_MAX_TRACKED_CLIENTS + 500; i++) meter.callStarted(`client-${i}`);
    expect(DEFAULT_MAX_TRACKED_CLIENTS).toBeGreaterThan(32);
    expect(meter.trackedClients).toBe(DEFAULT_MAX_TRACKED_CLIENTS);
  });
});

describe('serverMethods and infrastructure services', () => {
  const server = new grpc.Server();
  server.addService(EchoService.service, echoImplementation('x') as grpc.UntypedServiceImplementation);
  server.addService(healthService, healthImplementation);
  const echoPaths = Object.values(EchoService.service).map((m) => m.path).sort();

  it('does not advertise grpc.health.v1.Health (nor the other infrastructure services) by default', () => {
    expect(INFRASTRUCTURE_SERVICES).toContain('grpc.health.v1.Health');
    expect(serverMethods(server).map((m) => m.path).sort()).toEqual(echoPaths);
  });

  it('excludeServices [] advertises every service; a list replaces the default', () => {
    expect(serverMethods(server, []).map((m) => m.path).sort()).toEqual([...echoPaths, '/grpc.health.v1.Health/Check'].sort());
    expect(serverMethods(server, ['rebind.test.Echo']).map((m) => m.path)).toEqual(['/grpc.health.v1.Health/Check']);
  });

  it("never advertises rebind's own ORCA service", () => {
    const withOrca = new grpc.Server();
    withOrca.addService(EchoService.service, echoImplementation('x') as grpc.UntypedServiceImplementation);
    withOrca.addService(orcaServiceDefinition(), { StreamCoreMetrics: () => undefined });
    expect(serverMethods(withOrca, []).map((m) => m.path).sort()).toEqual(echoPaths);
  });
});

describe('ORCA service bounds (virtual time)', () => {
  /** A stand-in for grpc-js's ServerWritableStream: `flushes` says whether writes complete. */
  function fakeCall(intervalMs: number, behaviour: { flushes: boolean; writeReturns?: boolean } = { flushes: true }) {
    const call = new EventEmitter() as EventEmitter & Record<string, unknown>;
    const writes: unknown[] = [];
    const errors: unknown[] = [];
    Object.assign(call, {
      request: { report_interval: { seconds: 0, nanos: intervalMs * 1e6 } },
      cancelled: false,
      getPeer: () => 'ipv4:127.0.0.1:1',
      write(message: unknown, cb: () => void) {
        writes.push(message);
        if (behaviour.flushes) cb();
        return behaviour.writeReturns ?? true;
      },
    });
    call.on('error', (e) => errors.push(e));
    return { call, writes, errors, end: () => call.emit('cancelled') };
  }
  function setup(options: { maxStreams?: number; blockedTimeoutMs?: number } = {}) {
    const scheduler = new VirtualTimeScheduler(VirtualAction, 0);
    const refused: string[] = [];
    const service = createOrcaService(new LoadMeter(0), { ...options, scheduler, refused: (reason) => refused.push(reason) });
    const open = (c: ReturnType<typeof fakeCall>) => (service.handlers.StreamCoreMetrics as (call: unknown) => void)(c.call);
    const advanceTo = (ms: number) => {
      scheduler.maxFrames = ms;
      scheduler.flush();
    };
    return { service, refused, open, advanceTo };
  }

  it('shares one ticker per distinct interval and stops it when its last stream ends', () => {
    const { service, open, advanceTo } = setup();
    const fast = [fakeCall(100), fakeCall(100), fakeCall(100)];
    const slow = fakeCall(500);
    for (const c of [...fast, slow]) open(c);
    expect(service.streams).toBe(4);
    expect(service.tickers).toBe(2);
    advanceTo(1000);
    expect(fast.map((c) => c.writes.length)).toEqual([10, 10, 10]);
    expect(slow.writes).toHaveLength(2);
    for (const c of [...fast, slow]) c.end();
    expect(service.streams).toBe(0);
    expect(service.tickers).toBe(0);
  });

  it('skips reports while one waits to be flushed or write() asked for drain, and resets a stream blocked too long', () => {
    const { service, refused, open, advanceTo } = setup({ blockedTimeoutMs: 1000 });
    const stuck = fakeCall(100, { flushes: false });
    const full = fakeCall(100, { flushes: true, writeReturns: false });
    open(stuck);
    open(full);
    advanceTo(500);
    expect(stuck.writes).toHaveLength(1);
    expect(full.writes).toHaveLength(1);
    full.call.emit('drain');
    advanceTo(600);
    expect(full.writes).toHaveLength(2);
    advanceTo(1050);
    expect(stuck.errors).toHaveLength(0);
    advanceTo(1100); // its one report has waited 1000 ms
    const count = (reason: string) => refused.filter((r) => r === reason).length;
    expect(count('orca_stream_blocked')).toBe(1);
    // stuck: skipped at 200..1000 ms; full: skipped at 200..500 ms (until 'drain'), then at 700..1100 (its write at 600 asked for drain again).
    expect(count('orca_report_skipped')).toBe(9 + 4 + 5);
    // A fake call has no HTTP/2 stream to reset: the fallback ends the call with RESOURCE_EXHAUSTED.
    expect(stuck.errors).toMatchObject([{ code: grpc.status.RESOURCE_EXHAUSTED }]);
    // Its slot is held until the transport closes the stream.
    expect(service.streams).toBe(2);
    stuck.end();
    expect(service.streams).toBe(1);
  });

  it('refuses streams beyond maxStreams and validates its options', () => {
    const { service, refused, open } = setup({ maxStreams: 2 });
    const calls = [fakeCall(100), fakeCall(100), fakeCall(100)];
    for (const c of calls) open(c);
    expect(service.streams).toBe(2);
    expect(refused).toEqual(['orca_streams']);
    expect(calls[2]!.errors).toMatchObject([{ code: grpc.status.RESOURCE_EXHAUSTED, details: expect.stringContaining('at most 2 ORCA streams') }]);
    expect(() => orcaSettings({ maxStreams: 0 })).toThrow('orca.maxStreams must be an integer from 1 to 1000000 (streams), got 0');
    expect(() => orcaSettings({ blockedTimeoutMs: 1.5 })).toThrow('orca.blockedTimeoutMs must be an integer from 100 to 3600000 (ms), got 1.5');
    expect(orcaSettings(false)).toBeNull();
    expect(orcaSettings(true)).toEqual({ maxStreams: DEFAULT_ORCA_MAX_STREAMS, blockedTimeoutMs: DEFAULT_ORCA_BLOCKED_TIMEOUT_MS });
    expect(() => new LoadMeter(0, { maxTrackedClients: -1 })).toThrow('maxTrackedClients must be an integer from 1 to 1000000 (clients), got -1');
  });

  it('clamps the asked interval', () => {
    expect(orcaIntervalMs({})).toBe(1000);
    expect(orcaIntervalMs({ report_interval: { seconds: 0, nanos: 1000 } })).toBe(100);
    expect(orcaIntervalMs({ report_interval: { seconds: 1e10 } })).toBe(MAX_ORCA_INTERVAL_MS);
    expect(orcaIntervalMs({ report_interval: { seconds: -5 } })).toBe(1000);
  });
});

describe('README documents the replica bounds', () => {
  it('with the defaults of the code', () => {
    const readme = readFileSync(path.join(__dirname, '../../README.md'), 'utf8');
    expect(readme).toContain(`| \`orca.maxStreams\` | ${DEFAULT_ORCA_MAX_STREAMS} |`);
    expect(readme).toContain(`| \`orca.blockedTimeoutMs\` | ${DEFAULT_ORCA_BLOCKED_TIMEOUT_MS} |`);
    expect(readme).toContain(`| \`maxTrackedClients\` | ${DEFAULT_MAX_TRACKED_CLIENTS} |`);
    for (const service of INFRASTRUCTURE_SERVICES) expect(readme).toContain(service.replace(/\.v[23]\.ClientStatus/, '.v3/v2.ClientStatus'));
    expect(readme).toContain('## Limits and defences');
  });
});

describe('replica refusal counter', () => {
  it('counts every refusal and logs at most one warn line per reason per second', () => {
    let now = 0;
    const lines: { fields: Record<string, unknown>; message: string }[] = [];
    const counter = new RefusalCounter({ warn: ((fields: Record<string, unknown>, message: string) => lines.push({ fields, message })) as never }, () => now);
    for (let i = 0; i < 1000; i++) counter.refused('orca_streams', 'too many');
    counter.refused('meter_clients_untracked', 'untracked');
    now = 999;
    counter.refused('orca_streams', 'too many');
    now = 1000;
    counter.refused('orca_streams', 'too many');
    expect(counter.counts).toEqual(new Map([['orca_streams', 1002], ['meter_clients_untracked', 1]]));
    expect(lines.map((l) => [l.fields.reason, l.fields.suppressed])).toEqual([
      ['orca_streams', undefined],
      ['meter_clients_untracked', undefined],
      ['orca_streams', 1000],
    ]);
    expect(lines[0]!.message).toBe('refused: too many');
  });
});
