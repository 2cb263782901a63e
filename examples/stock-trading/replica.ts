/**
 * A stock-trading replica: a SessionFactory (stateless, load balanced by
 * rebind) and the TradingSession service for the sessions it created. The
 * services are plain grpc-js implementations; rebind enters with one
 * attach() call.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { attach, type Replica } from '../../src/index';
import { isSymbol, price } from './market';
import { stockProto, type SessionFactoryHandlers, type TradingSessionHandlers } from './proto';

interface Position {
  quantity: number;
  cost: number;
}

interface Session {
  trader: string;
  cash: number;
  positions: Map<string, Position>;
  orders: number;
  lastUsedMs: number;
}

export const STARTING_CASH = 100_000;
/** Sessions idle for this long are dropped. */
export const SESSION_IDLE_MS = 60_000;

/** Burns `us` microseconds of CPU: the work of creating a session. */
function work(us: number): void {
  const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  while (process.hrtime.bigint() < end) {
    // busy
  }
}

/**
 * The two services over one in-memory session table. `affinity()` returns
 * the token clients need to reach this replica again (from attach()).
 */
export function stockServices(name: string, affinity: () => string, factoryCostUs = 200) {
  const sessions = new Map<string, Session>();
  const find = (id: string): Session | grpc.ServiceError => {
    const session = sessions.get(id);
    if (session === undefined) {
      return Object.assign(new Error(`no session "${id.slice(0, 64)}" on replica ${name} (closed, expired, or created elsewhere)`), {
        code: grpc.status.NOT_FOUND,
        details: `no session "${id.slice(0, 64)}" on replica ${name} (closed, expired, or created elsewhere)`,
        metadata: new grpc.Metadata(),
      });
    }
    session.lastUsedMs = Date.now();
    return session;
  };
  const invalid = (details: string): grpc.ServiceError =>
    Object.assign(new Error(details), { code: grpc.status.INVALID_ARGUMENT, details, metadata: new grpc.Metadata() });

  const factory: SessionFactoryHandlers = {
    CreateSession(call, callback) {
      work(factoryCostUs);
      const sessionId = `s-${randomBytes(9).toString('base64url')}`;
      sessions.set(sessionId, { trader: call.request.trader.slice(0, 64), cash: STARTING_CASH, positions: new Map(), orders: 0, lastUsedMs: Date.now() });
      callback(null, { sessionId, affinity: affinity(), replica: name });
    },
  };

  const trading: TradingSessionHandlers = {
    Quote(call, callback) {
      const session = find(call.request.sessionId);
      if (session instanceof Error) return callback(session);
      if (!isSymbol(call.request.symbol)) return callback(invalid(`unknown symbol "${call.request.symbol.slice(0, 20)}"`));
      const now = Date.now();
      callback(null, { symbol: call.request.symbol, price: price(call.request.symbol, now), atUnixMs: now });
    },
    PlaceOrder(call, callback) {
      const session = find(call.request.sessionId);
      if (session instanceof Error) return callback(session);
      const { symbol, side, quantity } = call.request;
      if (!isSymbol(symbol)) return callback(invalid(`unknown symbol "${symbol.slice(0, 20)}"`));
      if (side !== 'BUY' && side !== 'SELL') return callback(invalid('side must be BUY or SELL'));
      if (!(quantity >= 1 && quantity <= 1_000_000)) return callback(invalid('quantity must be 1..1000000'));
      const fill = price(symbol, Date.now());
      const position = session.positions.get(symbol) ?? { quantity: 0, cost: 0 };
      if (side === 'BUY') {
        if (fill * quantity > session.cash) {
          return callback({ code: grpc.status.FAILED_PRECONDITION, details: `insufficient cash: ${session.cash.toFixed(2)} < ${(fill * quantity).toFixed(2)}` } as grpc.ServiceError);
        }
        session.cash -= fill * quantity;
        position.cost += fill * quantity;
        position.quantity += quantity;
      } else {
        if (position.quantity < quantity) {
          return callback({ code: grpc.status.FAILED_PRECONDITION, details: `cannot sell ${quantity} ${symbol}: holding ${position.quantity}` } as grpc.ServiceError);
        }
        position.cost -= (position.cost / position.quantity) * quantity;
        position.quantity -= quantity;
        session.cash += fill * quantity;
      }
      session.positions.set(symbol, position);
      session.orders++;
      callback(null, { orderId: `o-${session.orders}`, symbol, side, quantity, fillPrice: fill, cashAfter: Math.round(session.cash * 100) / 100 });
    },
    Portfolio(call, callback) {
      const session = find(call.request.sessionId);
      if (session instanceof Error) return callback(session);
      callback(null, {
        positions: [...session.positions].filter(([, p]) => p.quantity > 0).map(([symbol, p]) => ({ symbol, quantity: p.quantity, averageCost: p.cost / p.quantity })),
        cash: Math.round(session.cash * 100) / 100,
        orders: session.orders,
      });
    },
    PriceFeed(call) {
      const session = find(call.request.sessionId);
      if (session instanceof Error) return call.destroy(session);
      const symbols = call.request.symbols.filter(isSymbol);
      if (symbols.length === 0) return call.destroy(invalid('price feed needs at least one known symbol'));
      const ticks = Math.min(Math.max(call.request.ticks, 1), 1000);
      const intervalMs = Math.min(Math.max(call.request.intervalMs, 10), 10_000);
      let sent = 0;
      const timer = setInterval(() => {
        if (call.cancelled) return clearInterval(timer);
        const now = Date.now();
        for (const symbol of symbols) call.write({ symbol, price: price(symbol, now), atUnixMs: now });
        if (++sent >= ticks) {
          clearInterval(timer);
          call.end();
        }
      }, intervalMs);
      call.on('cancelled', () => clearInterval(timer));
    },
    CloseSession(call, callback) {
      const session = find(call.request.sessionId);
      if (session instanceof Error) return callback(session);
      sessions.delete(call.request.sessionId);
      callback(null, { orders: session.orders });
    },
  };

  const janitor = setInterval(() => {
    const cutoff = Date.now() - SESSION_IDLE_MS;
    for (const [id, s] of sessions) if (s.lastUsedMs < cutoff) sessions.delete(id);
  }, 10_000);
  janitor.unref();

  return { factory, trading, sessions, stop: () => clearInterval(janitor) };
}

export interface StockReplicaOptions {
  name: string;
  /** Balancer's control address, or several (an HA set: the replica attaches to each). */
  balancer: string | readonly string[];
  group?: string;
  /** host:port to listen on (port 0 picks one). */
  listen?: string;
  /** CPU microseconds each CreateSession costs (default 200). */
  factoryCostUs?: number;
  /** Control channel credentials and token (a secured balancer). */
  credentials?: grpc.ChannelCredentials;
  token?: string;
}

export interface StockReplica {
  name: string;
  address: string;
  server: grpc.Server;
  replica: Replica;
  sessions: Map<string, unknown>;
  stop(): Promise<void>;
}

/** Starts a replica on loopback and attaches it to the balancer's group. */
export async function startStockReplica(options: StockReplicaOptions): Promise<StockReplica> {
  const proto = stockProto();
  let replica: Replica | null = null;
  const services = stockServices(options.name, () => replica!.affinity, options.factoryCostUs);
  const server = new grpc.Server();
  server.addService(proto.SessionFactory.service, services.factory);
  server.addService(proto.TradingSession.service, services.trading);
  const listen = options.listen ?? '127.0.0.1:0';
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const address = listen.replace(/:[0-9]+$/, `:${port}`);
  replica = await attach(server, {
    balancer: options.balancer,
    group: options.group ?? 'stock',
    address,
    ...(options.credentials ? { credentials: options.credentials } : {}),
    ...(options.token !== undefined ? { token: options.token } : {}),
  });
  return {
    name: options.name,
    address,
    server,
    replica,
    sessions: services.sessions,
    async stop() {
      services.stop();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    },
  };
}
