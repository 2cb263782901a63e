/**
 * The stock-trading example end to end, shortened: factory replicas balanced
 * by rebind, sessions pinned to the replica that created them.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { Balancer, clientOptions } from '../../src/index';
import { stockProto, type TradingSessionClient } from '../../examples/stock-trading/proto';
import { startStockReplica, type StockReplica } from '../../examples/stock-trading/replica';
import { Trader } from '../../examples/stock-trading/trader';
import { startBalancer, sleep, waitFor } from '../support/cluster';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups.length = 0;
});

async function market(granularity = 'on-demand', strategy = 'minimum_dispersion'): Promise<{ balancer: Balancer; replicas: StockReplica[] }> {
  const balancer = await startBalancer([{ name: 'stock', granularity, strategy, reportIntervalMs: 200 }]);
  cleanups.push(() => balancer.stop());
  const replicas: StockReplica[] = [];
  for (const name of ['r1', 'r2']) {
    const r = await startStockReplica({ name, balancer: balancer.controlAddress, factoryCostUs: 50 });
    cleanups.push(() => r.stop());
    replicas.push(r);
  }
  return { balancer, replicas };
}

function quote(session: TradingSessionClient, sessionId: string): Promise<{ price: number }> {
  return new Promise((resolve, reject) => session.quote({ sessionId, symbol: 'ACME' }, { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r!))));
}

describe('stock trading', () => {
  it('traders run sessions through the balancer with no failed call', async () => {
    const { balancer, replicas } = await market('per-session', 'round_robin');
    const traders = [0, 1, 2, 3].map((i) => new Trader({ balancer: balancer.address, name: `t${i}`, sessionsPerS: 10 }));
    traders.forEach((t) => t.start());
    await sleep(1500);
    const stats = await Promise.all(traders.map((t) => t.stop()));
    const sessions = stats.reduce((s, t) => s + t.completed, 0);
    expect(sessions).toBeGreaterThan(40);
    expect(stats.reduce((s, t) => s + t.failedCalls, 0)).toBe(0);
    // Per-session round-robin: two traders on each replica, every session where its trader is bound.
    for (const t of stats) expect(Object.keys(t.sessionsByReplica)).toHaveLength(1);
    expect(new Set(stats.map((t) => Object.keys(t.sessionsByReplica)[0])).size).toBe(2);
    expect(replicas.every((r) => r.sessions.size === 0)).toBe(true);
  });

  it("a session keeps working after its trader's factory binding moved to another replica", async () => {
    const { balancer, replicas } = await market();
    const trader = new Trader({ balancer: balancer.address, name: 'alice', sessionsPerS: 1 });
    cleanups.push(() => trader.stop());
    const first = (await trader.openSession())!;
    const owner = replicas.find((r) => r.name === first.replica)!;
    const other = replicas.find((r) => r !== owner)!;
    const proto = stockProto();
    const session = new proto.TradingSession(balancer.address, grpc.credentials.createInsecure(), clientOptions({ clientId: trader.clientId, affinity: first.affinity })) as unknown as TradingSessionClient;
    cleanups.push(() => session.close());
    expect((await quote(session, first.sessionId)).price).toBeGreaterThan(0);

    // The balancer moves the trader (an advisory to its replica, as a plan would send).
    const group = balancer.registry.groups.get('stock')!;
    const ownerMember = [...group.members.values()].find((m) => m.address === owner.address)!;
    ownerMember.sink.sendAdvisory({ seq: 99, moves: [{ clientId: trader.clientId, target: other.address }], recallAll: false, expireMs: 5000 });
    await waitFor(() => owner.replica.forwards.pending === 1, 2000, 5, 'the advisory');
    const second = (await trader.openSession())!;
    expect(second.replica).toBe(other.name);
    expect(trader.stats.rebinds).toBe(1);

    // The first session still lives on its owner and is reached there.
    for (let i = 0; i < 3; i++) expect((await quote(session, first.sessionId)).price).toBeGreaterThan(0);
    await new Promise<void>((resolve, reject) =>
      session.placeOrder({ sessionId: first.sessionId, symbol: 'ACME', side: 'BUY', quantity: 2 }, { deadline: Date.now() + 5000 }, (e) => (e ? reject(e) : resolve())),
    );
    const portfolio = await new Promise<{ orders: number }>((resolve, reject) =>
      session.portfolio({ sessionId: first.sessionId }, { deadline: Date.now() + 5000 }, (e, r) => (e ? reject(e) : resolve(r!))),
    );
    expect(portfolio.orders).toBe(1);
    expect(owner.sessions.has(first.sessionId)).toBe(true);
  });

  it("calls on a session whose replica is gone fail with FAILED_PRECONDITION saying so", async () => {
    const { balancer, replicas } = await market();
    const trader = new Trader({ balancer: balancer.address, name: 'bob', sessionsPerS: 1 });
    cleanups.push(() => trader.stop());
    const handle = (await trader.openSession())!;
    const owner = replicas.find((r) => r.name === handle.replica)!;
    const proto = stockProto();
    const session = new proto.TradingSession(balancer.address, grpc.credentials.createInsecure(), clientOptions({ clientId: trader.clientId, affinity: handle.affinity })) as unknown as TradingSessionClient;
    cleanups.push(() => session.close());
    await quote(session, handle.sessionId);
    await owner.stop();
    await waitFor(() => balancer.registry.groups.get('stock')!.members.size === 1);
    const err = (await quote(session, handle.sessionId).catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(err.details).toContain(`the replica that owns this call (${owner.address}`);
    // New sessions still open on the remaining replica.
    expect((await trader.openSession())!.replica).not.toBe(owner.name);
  });

  it('the price feed streams ticks for a session, and unknown sessions are NOT_FOUND', async () => {
    const { balancer } = await market();
    const trader = new Trader({ balancer: balancer.address, name: 'carol', sessionsPerS: 1 });
    cleanups.push(() => trader.stop());
    const handle = (await trader.openSession())!;
    const proto = stockProto();
    const session = new proto.TradingSession(balancer.address, grpc.credentials.createInsecure(), clientOptions({ clientId: trader.clientId, affinity: handle.affinity })) as unknown as TradingSessionClient;
    cleanups.push(() => session.close());
    const ticks: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = session.priceFeed({ sessionId: handle.sessionId, symbols: ['ACME', 'WAYNE'], ticks: 3, intervalMs: 20 });
      call.on('data', (t: { symbol: string }) => ticks.push(t.symbol));
      call.on('end', resolve);
      call.on('error', reject);
    });
    expect(ticks).toEqual(['ACME', 'WAYNE', 'ACME', 'WAYNE', 'ACME', 'WAYNE']);
    const err = (await quote(session, 's-nope').catch((e) => e)) as grpc.ServiceError;
    expect(err.code).toBe(grpc.status.NOT_FOUND);
  });
});
