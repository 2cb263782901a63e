import { describe, expect, it } from 'vitest';
import { sanitizeAdvisory } from '../../src/replica/advisory';
import { ForwardTable } from '../../src/replica/forward-table';
import { LoadMeter } from '../../src/replica/load-meter';

describe('forward table', () => {
  it('forwards an advised client once, then serves it', () => {
    let now = 0;
    const table = new ForwardTable(() => now);
    table.apply({ seq: 1, moves: [{ clientId: 'client-one', target: '10.0.0.2:80', vouch: '' }], recallAll: false, expireMs: 1000 });
    expect(table.take('client-two')).toBeNull();
    expect(table.take('client-one')).toEqual({ target: '10.0.0.2:80', reason: 'advisory' });
    expect(table.take('client-one')).toBeNull();
  });
  it('drops a move the client did not use before it expired', () => {
    let now = 0;
    const table = new ForwardTable(() => now);
    table.apply({ seq: 1, moves: [{ clientId: 'client-one', target: '', vouch: '' }], recallAll: false, expireMs: 100 });
    now = 101;
    table.sweep();
    expect(table.pending).toBe(0);
    expect(table.expired).toBe(1);
    expect(table.take('client-one')).toBeNull();
  });
  it('an empty target means back to the balancer; recall and drain apply to every rebind client', () => {
    const table = new ForwardTable(() => 0);
    table.apply({ seq: 1, moves: [{ clientId: 'client-one', target: '', vouch: '' }], recallAll: false, expireMs: 100 });
    expect(table.take('client-one')).toEqual({ target: 'balancer', reason: 'advisory' });
    table.apply({ seq: 2, moves: [], recallAll: true, expireMs: 100 });
    expect(table.take(null)).toEqual({ target: 'balancer', reason: 'recall' });
    table.draining = true;
    expect(table.take('anyone-123')).toEqual({ target: 'balancer', reason: 'drain' });
  });
});

describe('advisory sanitizing on the replica', () => {
  it('keeps valid moves and names the bad ones', () => {
    const { advisory, problems } = sanitizeAdvisory({
      seq: 1,
      recallAll: false,
      expireMs: 0,
      moves: [
        { clientId: 'client-good', target: '127.0.0.1:5', vouch: '' },
        { clientId: '!', target: '127.0.0.1:5', vouch: '' },
        { clientId: 'client-bad-target', target: 'not an address', vouch: '' },
      ],
    });
    expect(advisory.moves).toEqual([{ clientId: 'client-good', target: '127.0.0.1:5', vouch: '' }]);
    expect(advisory.expireMs).toBe(5000);
    expect(problems).toHaveLength(3);
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
    expect(s.topClients).toEqual([{ clientId: 'client-aaaa', callsPerS: 60 }]);
    expect(s.otherCallsPerS).toBe(40);
    expect(s.forwards).toBe(1);
    expect(s).toMatchObject({ custom: 7, hasCustom: true });
    // The next interval starts from zero but keeps the calls still in flight.
    const next = meter.snapshot(1500, 5, undefined, false);
    expect(next).toMatchObject({ callsPerS: 0, inFlight: 2, topClients: [], forwards: 0, hasCustom: false });
  });
});
