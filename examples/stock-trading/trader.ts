/**
 * A trading client. It opens sessions on the SessionFactory through the
 * balancer (one rebind channel: per-session or on-demand binding), and runs
 * each session on the replica that created it: one channel per owning
 * replica, pinned with the session's affinity token. Sessions start on a
 * fixed schedule (open loop); each makes a quote, an order and closes.
 */
import * as grpc from '@grpc/grpc-js';
import { randomBytes } from 'node:crypto';
import { clientEvents, clientOptions } from '../../src/index';
import { SYMBOLS } from './market';
import { stockProto, type SessionFactoryClient, type SessionHandle__Output, type TradingSessionClient } from './proto';

export interface TraderOptions {
  /** The balancer's data address. */
  balancer: string;
  name: string;
  /** Sessions started per second. */
  sessionsPerS: number;
  /** Called on every binding change of the factory channel. */
  onRebind?: (event: { from: string; to: string; reason: string; atMs: number }) => void;
  deadlineMs?: number;
}

export interface TraderStats {
  name: string;
  sessions: number;
  completed: number;
  calls: number;
  failedCalls: number;
  errors: string[];
  rebinds: number;
  /** Sessions per replica name. */
  sessionsByReplica: Record<string, number>;
}

export class Trader {
  readonly clientId = randomBytes(12).toString('base64url');
  private readonly factory: SessionFactoryClient;
  private readonly sessionChannels = new Map<string, TradingSessionClient>();
  private timer: NodeJS.Timeout | null = null;
  private readonly inFlight = new Set<Promise<void>>();
  private bound = false;
  private readonly listener;
  readonly stats: TraderStats;

  constructor(private readonly options: TraderOptions) {
    const proto = stockProto();
    this.factory = new proto.SessionFactory(options.balancer, grpc.credentials.createInsecure(), clientOptions({ clientId: this.clientId })) as unknown as SessionFactoryClient;
    this.stats = { name: options.name, sessions: 0, completed: 0, calls: 0, failedCalls: 0, errors: [], rebinds: 0, sessionsByReplica: {} };
    // Binding changes of this trader's factory channel (its session channels are pinned and never move).
    this.listener = {
      forwarded: (from: string, to: string, reason: string, clientId: string | null) => {
        if (clientId !== this.clientId) return;
        if (!this.bound) {
          this.bound = true;
          return;
        }
        this.stats.rebinds++;
        this.options.onRebind?.({ from, to, reason, atMs: Date.now() });
      },
    };
    clientEvents.add(this.listener);
  }

  private deadline(): number {
    return Date.now() + (this.options.deadlineMs ?? 10_000);
  }

  private record(err: grpc.ServiceError | null): boolean {
    this.stats.calls++;
    if (err) {
      this.stats.failedCalls++;
      if (this.stats.errors.length < 20) this.stats.errors.push(`${grpc.status[err.code]}: ${err.details}`);
      return false;
    }
    return true;
  }

  /** The session channel for a replica, pinned with its affinity token. */
  private sessionChannel(affinity: string): TradingSessionClient {
    let channel = this.sessionChannels.get(affinity);
    if (channel === undefined) {
      const proto = stockProto();
      channel = new proto.TradingSession(this.options.balancer, grpc.credentials.createInsecure(), clientOptions({ clientId: this.clientId, affinity })) as unknown as TradingSessionClient;
      this.sessionChannels.set(affinity, channel);
    }
    return channel;
  }

  /** Opens a session. */
  openSession(): Promise<SessionHandle__Output | null> {
    return new Promise((resolve) => {
      this.factory.createSession({ trader: this.options.name }, { deadline: this.deadline() }, (err, handle) => {
        resolve(this.record(err) ? handle! : null);
      });
    });
  }

  /** One session: create, quote, buy, close. */
  async runSession(): Promise<void> {
    this.stats.sessions++;
    const handle = await this.openSession();
    if (handle === null) return;
    this.stats.sessionsByReplica[handle.replica] = (this.stats.sessionsByReplica[handle.replica] ?? 0) + 1;
    const session = this.sessionChannel(handle.affinity);
    const symbol = SYMBOLS[this.stats.sessions % SYMBOLS.length]!;
    const sessionId = handle.sessionId;
    const ok = await new Promise<boolean>((resolve) => session.quote({ sessionId, symbol }, { deadline: this.deadline() }, (err) => resolve(this.record(err))));
    if (!ok) return;
    await new Promise<void>((resolve) =>
      session.placeOrder({ sessionId, symbol, side: 'BUY', quantity: 1 + (this.stats.sessions % 10) }, { deadline: this.deadline() }, (err) => {
        this.record(err);
        resolve();
      }),
    );
    await new Promise<void>((resolve) =>
      session.closeSession({ sessionId }, { deadline: this.deadline() }, (err) => {
        if (this.record(err)) this.stats.completed++;
        resolve();
      }),
    );
  }

  /** Starts sessions on a fixed schedule until stop(). */
  start(): void {
    const period = 1000 / this.options.sessionsPerS;
    const begin = Date.now();
    let started = 0;
    const tick = () => {
      const due = Math.floor((Date.now() - begin) / period) + 1;
      while (started < due) {
        started++;
        const run = this.runSession();
        this.inFlight.add(run);
        void run.finally(() => this.inFlight.delete(run));
      }
      this.timer = setTimeout(tick, Math.max(1, begin + started * period - Date.now()));
    };
    tick();
  }

  /** Stops starting sessions, waits for those in flight, closes the channels. */
  async stop(): Promise<TraderStats> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    await Promise.all([...this.inFlight]);
    clientEvents.delete(this.listener);
    this.factory.close();
    for (const c of this.sessionChannels.values()) c.close();
    return this.stats;
  }
}
