/**
 * Coordination of several balancers through etcd (README "HA"): one lease
 * per balancer, registration under `<prefix>balancers/<id>`, one planning
 * leader per group (`<prefix>leaders/<group>`, created if absent with the
 * leader's lease), run-time group configuration (`<prefix>config/groups/<group>`)
 * and generic shared documents (`<prefix>docs/<name>`, compare-and-swap).
 *
 * Leadership is proven locally: a balancer leads group G only while it holds
 * `leaders/G` with its current lease AND now < (send time of the last
 * acknowledged keep-alive) + TTL. etcd cannot expire the lease before that
 * instant, so when etcd becomes unreachable the proof runs out before any
 * other balancer can win: there are never two planners.
 *
 * Nothing here blocks the data path: start() returns at once and keeps
 * retrying with backoff while etcd is down; when etcd returns the coordinator
 * resumes by itself (same lease if it is still alive, else a new lease,
 * registration and campaign).
 */
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Etcd3, EtcdAuthenticationFailedError, EtcdLeaseInvalidError, EtcdPermissionDeniedError, type IKeyValue, type IOptions, type Lease, type Namespace, type Watcher } from 'etcd3';
import type { Logger } from '../../common/logger';
import type { HaConfig } from '../config';

/** Deadline of each unary etcd call (and of each keep-alive), ms: a dead etcd is noticed within this. */
export const ETCD_CALL_TIMEOUT_MS = 1000;
/** First delay before retrying a failed session start (lease grant, registration), ms; doubles up to the max. */
export const ETCD_RETRY_MIN_MS = 100;
/** Longest delay between attempts while etcd is unreachable, ms: a returning etcd is used again within this. */
export const ETCD_RETRY_MAX_MS = 1000;
/** grpc reconnect backoff towards etcd, ms (grpc's default grows to 120 s: far too slow to notice a returning etcd). */
export const ETCD_RECONNECT_BACKOFF_MAX_MS = 500;
/** Balancers remembered from etcd; more registrations are ignored (and counted). */
export const MAX_KNOWN_BALANCERS = 1024;
/** Compare-and-swap attempts of a run-time config write before it gives up (someone else kept winning). */
export const CONFIG_WRITE_ATTEMPTS = 5;
/** Largest value accepted from etcd for a registration or config entry, bytes. */
export const MAX_ETCD_VALUE_BYTES = 64 * 1024;
const DOC_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const BALANCER_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A balancer as registered in etcd. */
export interface BalancerInfo {
  id: string;
  address: string;
  controlAddress: string;
  adminAddress: string;
  startedAtMs: number;
}

/** A group's run-time configuration as stored in etcd (`config/groups/<group>`). */
export interface GroupRuntimeConfig {
  strategy?: { name: string; params: Record<string, number> };
  granularity?: string;
  /** Balancer id that wrote it. */
  by: string;
  /** When it was written (wall-clock ms). */
  atMs: number;
}

/** Generic storage of one document in etcd (the key ring uses it). */
export interface SharedDoc {
  /** Current value and its etcd mod revision; null when absent. */
  get(): Promise<{ value: string; revision: string } | null>;
  /** Writes `value` if the doc is still at `revision` (null: create if absent); false if someone else won. */
  compareAndSwap(revision: string | null, value: string): Promise<boolean>;
  /** Called with each new value (also once with the current one after (re)connecting). */
  watch(listener: (value: string) => void): () => void;
}

export interface CoordinatorEvents {
  /** This balancer gained (true) or lost (false) the leadership of `group`. */
  leadershipChanged: [group: string, leading: boolean];
  /** A group's run-time configuration was read or changed in etcd. */
  configChanged: [group: string, config: GroupRuntimeConfig];
  /** etcd became reachable (true) or unreachable (false). */
  etcdChanged: [up: boolean];
}

export interface CoordinatorOptions {
  config: HaConfig;
  /** This balancer's addresses (read when registering). */
  self: () => Omit<BalancerInfo, 'id'>;
  /** Groups to campaign for (read at each (re)synchronisation). */
  groups: () => string[];
  log: Logger;
  /** Wall clock, ms (injected in tests). */
  now?: () => number;
  /** Told of each etcd entry ignored, by reason (the balancer counts them with its refused inputs). */
  ignored?: (reason: string) => void;
}

/** The default balancer id: `${hostname}-${pid}-${4 random hex}`, cut to the accepted 64 characters. */
export function defaultBalancerId(): string {
  const host = hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 40) || 'balancer';
  return `${host}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

/**
 * A fault-handling policy that just runs the call: etcd3's default circuit
 * breaker refuses every call for 5 s after 3 failures, so a returning etcd
 * would go unused that long; retries and backoff are the coordinator's. Async,
 * so that a call that throws becomes a rejection (etcd3 relies on it).
 */
const passThrough = { execute: async <T>(fn: (context: unknown) => T | Promise<T>): Promise<T> => fn({ signal: new AbortController().signal }) };

/** Exponential backoff for etcd3's watch reconnects, capped at ETCD_RETRY_MAX_MS (its default grows to 30 s). */
function watchBackoff(delayMs = ETCD_RETRY_MIN_MS): { duration: number; next(): unknown } {
  return { duration: delayMs, next: () => watchBackoff(Math.min(delayMs * 2, ETCD_RETRY_MAX_MS)) };
}

/** What went wrong with etcd, for the log line and /healthz: the cause named, and the setting to check. */
export interface EtcdFailure {
  /**
   * unreachable: no answer; tls: the TLS handshake failed; auth: etcd refused
   * the user or password; permission: the user may not use the prefix.
   */
  kind: 'unreachable' | 'tls' | 'auth' | 'permission';
  /** Short, for /healthz ("degraded: etcd <summary> since …"). */
  summary: string;
  /** The log line. */
  message: string;
}

/**
 * Classifies a failed etcd call. etcd3 maps some errors to its own classes
 * and leaves others as grpc errors with etcd's text, so both are matched.
 */
export function describeEtcdFailure(err: unknown): EtcdFailure {
  const text = String((err as Error)?.message ?? err);
  if (err instanceof EtcdAuthenticationFailedError || /authentication failed|invalid user ID or password/i.test(text))
    return {
      kind: 'auth',
      summary: 'refused the credentials (authentication failed)',
      message: 'ha: etcd refused this balancer: authentication failed (invalid user or password: check ha.etcd.auth username and passwordFile); serving from what this balancer has, not planning until it is fixed',
    };
  if (err instanceof EtcdPermissionDeniedError || /permission denied/i.test(text))
    return {
      kind: 'permission',
      summary: 'refused access (permission denied)',
      message: "ha: etcd refused this balancer: permission denied (the etcd user's role must have readwrite on every key under ha.etcd.prefix); serving from what this balancer has, not planning until it is fixed",
    };
  if (/SSL|TLS|certificate|handshake/i.test(text))
    return {
      kind: 'tls',
      summary: 'unreachable (TLS handshake failed)',
      message: "ha: etcd TLS handshake failed (check ha.etcd.tls: caFile must sign etcd's certificate; certFile and keyFile are needed when etcd requires client certificates); serving from what this balancer has, not planning until it returns",
    };
  return { kind: 'unreachable', summary: 'unreachable', message: 'ha: etcd unreachable: serving from what this balancer has, not planning until it returns' };
}

function readSecret(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** etcd3 client options from the `ha.etcd` configuration (files are read here, at start). */
export function etcdClientOptions(config: HaConfig['etcd']): IOptions {
  const tls = config.tls;
  return {
    hosts: config.endpoints,
    ...(tls !== null
      ? {
          credentials: {
            rootCertificate: readSecret(tls.caFile, 'ha.etcd.tls.caFile'),
            ...(tls.certFile !== null ? { certChain: readSecret(tls.certFile, 'ha.etcd.tls.certFile') } : {}),
            ...(tls.keyFile !== null ? { privateKey: readSecret(tls.keyFile, 'ha.etcd.tls.keyFile') } : {}),
          },
        }
      : {}),
    ...(config.auth !== null ? { auth: { username: config.auth.username, password: readSecret(config.auth.passwordFile, 'ha.etcd.auth.passwordFile').toString('utf8').trim() } } : {}),
    dialTimeout: ETCD_CALL_TIMEOUT_MS,
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }),
    grpcOptions: { 'grpc.initial_reconnect_backoff_ms': ETCD_RETRY_MIN_MS, 'grpc.max_reconnect_backoff_ms': ETCD_RECONNECT_BACKOFF_MAX_MS },
    faultHandling: {
      host: () => passThrough as never,
      global: passThrough as never,
      watchBackoff: watchBackoff() as never,
    },
  };
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });

interface LeaderEntry {
  id: string;
  lease: string;
}

/** Coordinates this balancer with the others through etcd; see the module comment. */
export class Coordinator extends EventEmitter<CoordinatorEvents> {
  /** This balancer's id in etcd. */
  readonly id: string;
  /** Whether etcd answered the last call (lease keep-alive, read or write). */
  etcdUp = false;
  /** Since when etcd has been unreachable (wall-clock ms), null while it is up. */
  etcdDownSinceMs: number | null;
  /** Why etcd is not usable (the last failure), null while it is up or before the first attempt. */
  etcdFailure: EtcdFailure | null = null;
  /** Times this balancer gained the leadership of a group, by group. */
  readonly leaderGains = new Map<string, number>();
  /** etcd entries ignored: registrations beyond MAX_KNOWN_BALANCERS, values that did not parse (also told to options.ignored). */
  ignoredEntries = 0;
  private readonly client: Etcd3;
  private readonly ns: Namespace;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly stopping = new AbortController();
  private lease: Lease | null = null;
  private leaseId: string | null = null;
  /**
   * Leadership is proven until this instant (monotonic ms, performance.now()):
   * send time of the last acknowledged keep-alive + TTL. Monotonic, so that a
   * wall clock stepped back cannot stretch the proof past etcd's expiry.
   */
  private provenUntilMs = 0;
  private readonly mono = () => performance.now();
  private readonly leaders = new Map<string, LeaderEntry | null>();
  private readonly known = new Map<string, BalancerInfo>();
  private readonly leading = new Set<string>();
  private readonly docListeners = new Map<string, Set<(value: string) => void>>();
  private watcher: Watcher | null = null;
  private needsSync = true;
  private wake: (() => void) | null = null;
  private proofTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly campaigning = new Set<string>();
  /** Settled by the first sync, or by the first failure to reach etcd. */
  private firstTry!: () => void;
  private readonly firstTried = new Promise<void>((resolve) => (this.firstTry = resolve));

  constructor(private readonly options: CoordinatorOptions) {
    super();
    this.id = options.config.balancerId ?? defaultBalancerId();
    this.ttlMs = options.config.leaseTtlMs;
    this.now = options.now ?? Date.now;
    this.log = options.log;
    this.etcdDownSinceMs = this.now();
    this.client = new Etcd3(etcdClientOptions(options.config.etcd));
    this.ns = this.client.namespace(options.config.etcd.prefix);
  }

  /** Starts coordinating in the background; never fails nor waits for etcd. */
  start(): void {
    if (this.running !== null) return;
    this.startWatch();
    this.running = this.run().catch((err: unknown) => this.log.error({ err }, 'ha: coordinator loop failed'));
  }

  /**
   * Resolves once the first synchronisation with etcd is done (run-time
   * configuration applied, campaigns made), at once if etcd could not be
   * reached, and after `timeoutMs` at the latest.
   */
  async synced(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.firstTried, new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Stops: revokes the lease (its keys, leaderships included, go at once: a clean hand-off) and closes the client. */
  async stop(): Promise<void> {
    if (this.stopping.signal.aborted) return;
    this.stopping.abort();
    if (this.proofTimer !== null) clearTimeout(this.proofTimer);
    this.provenUntilMs = 0;
    this.refresh();
    await this.running;
    const lease = this.lease;
    this.lease = null;
    if (lease !== null) await lease.revoke({ deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }).catch((err: unknown) => this.log.warn({ err: String(err) }, 'ha: could not revoke the lease (it expires by itself)'));
    await this.cancelWatch();
    this.client.close();
  }

  /** Cancels the watch, not waiting on etcd's answer longer than one call. */
  private async cancelWatch(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = null;
    if (watcher === null) return;
    watcher.removeAllListeners();
    watcher.on('error', () => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([watcher.cancel().catch(() => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ETCD_CALL_TIMEOUT_MS)))]);
    clearTimeout(timer);
  }

  /**
   * Stops without revoking the lease or keeping it alive, as if the process
   * had died (tests): its leaderships go when etcd expires the lease.
   */
  abandon(): void {
    this.stopping.abort();
    if (this.proofTimer !== null) clearTimeout(this.proofTimer);
    this.provenUntilMs = 0;
    this.lease?.release();
    this.lease = null;
    void this.cancelWatch();
    this.client.close();
  }

  /** Whether this balancer may plan for `group` now (holds the key with its live lease, and the proof has not run out). */
  isLeader(group: string): boolean {
    const entry = this.leaders.get(group);
    return entry != null && entry.id === this.id && entry.lease === this.leaseId && this.mono() < this.provenUntilMs;
  }

  /** The leader of `group` as last seen in etcd, or null. */
  leaderOf(group: string): string | null {
    return this.leaders.get(group)?.id ?? null;
  }

  /** The balancers registered in etcd (as last seen), by id. */
  balancers(): BalancerInfo[] {
    return [...this.known.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Live balancers (at least 1: this one). */
  peerCount(): number {
    return Math.max(1, this.known.size + (this.known.has(this.id) ? 0 : 1));
  }

  /** Campaigns for a group that appeared after start (auto-created groups). */
  addGroup(group: string): void {
    if (!this.leaders.has(group)) this.leaders.set(group, null);
    void this.campaign(group);
  }

  /** The shared document `<prefix>docs/<name>`. */
  sharedDoc(name: string): SharedDoc {
    if (!DOC_NAME.test(name)) throw new Error(`shared doc name ${JSON.stringify(name)} must be 1-64 characters of letters, digits, . _ -`);
    const key = `docs/${name}`;
    return {
      get: async () => {
        const res = await this.track(this.ns.get(key).exec());
        const kv = res.kvs[0];
        return kv === undefined ? null : { value: kv.value.toString('utf8'), revision: kv.mod_revision };
      },
      compareAndSwap: async (revision, value) => {
        const cmp = revision === null ? this.ns.if(key, 'Create', '==', 0) : this.ns.if(key, 'Mod', '==', revision);
        const res = await this.track(cmp.then(this.ns.put(key).value(value)).commit());
        return res.succeeded;
      },
      watch: (listener) => {
        const set = this.docListeners.get(name) ?? new Set();
        this.docListeners.set(name, set);
        set.add(listener);
        if (this.etcdUp) void this.readDoc(name, listener);
        return () => {
          set.delete(listener);
          if (set.size === 0) this.docListeners.delete(name);
        };
      },
    };
  }

  /**
   * Writes a group's run-time configuration: merges `change` into what etcd
   * holds (or `base`, what this balancer runs, when etcd holds nothing) with
   * compare-and-swap. Rejects when etcd is unreachable.
   */
  async writeGroupConfig(group: string, change: Pick<GroupRuntimeConfig, 'strategy' | 'granularity'>, base: Pick<GroupRuntimeConfig, 'strategy' | 'granularity'>): Promise<GroupRuntimeConfig> {
    const key = configKey(group);
    for (let attempt = 0; attempt < CONFIG_WRITE_ATTEMPTS; attempt++) {
      const res = await this.track(this.ns.get(key).exec());
      const kv = res.kvs[0];
      const current = kv === undefined ? null : parseRuntimeConfig(kv.value.toString('utf8'));
      const next: GroupRuntimeConfig = { ...base, ...(current ?? {}), ...change, by: this.id, atMs: this.now() };
      const cmp = kv === undefined ? this.ns.if(key, 'Create', '==', 0) : this.ns.if(key, 'Mod', '==', kv.mod_revision);
      const written = await this.track(cmp.then(this.ns.put(key).value(JSON.stringify(next))).commit());
      if (written.succeeded) return next;
    }
    throw new Error(`the run-time configuration of group ${group} kept changing under ${CONFIG_WRITE_ATTEMPTS} attempts`);
  }

  /**
   * Records etcd's reachability from a call's outcome. `keyed` false: a lease
   * call, which needs no permission on any key; its success does not prove
   * etcd usable while etcd refuses this balancer's keys (else the state would
   * flap up and down at every keep-alive).
   */
  private async track<T>(call: Promise<T>, keyed = true): Promise<T> {
    try {
      const value = await call;
      if (keyed || this.etcdFailure?.kind !== 'permission') this.setUp(true);
      return value;
    } catch (err) {
      if (!(err instanceof EtcdLeaseInvalidError)) this.setUp(false, err);
      throw err;
    }
  }

  private setUp(up: boolean, err?: unknown): void {
    if (this.stopping.signal.aborted) return;
    if (!up) {
      // Logged once per state change, and once per change of cause (the first failure too: a balancer that never reached etcd says why).
      const failure = describeEtcdFailure(err);
      const known = this.etcdFailure;
      this.etcdFailure = failure;
      if (!this.etcdUp && known?.kind === failure.kind) return;
      if (!this.etcdUp) {
        this.log.warn({ err: err === undefined ? undefined : String(err) }, failure.message);
        return;
      }
    }
    if (up === this.etcdUp) return;
    this.etcdUp = up;
    if (up) {
      this.log.info({ downMs: this.etcdDownSinceMs === null ? 0 : this.now() - this.etcdDownSinceMs }, 'ha: etcd reachable');
      this.etcdDownSinceMs = null;
      this.etcdFailure = null;
    } else {
      this.etcdDownSinceMs = this.now();
      this.needsSync = true;
      this.firstTry();
      this.log.warn({ err: err === undefined ? undefined : String(err) }, this.etcdFailure!.message);
    }
    this.emit('etcdChanged', up);
    this.refresh();
  }

  /** Sessions one after the other: a session ends when its lease is lost (or at stop). */
  private async run(): Promise<void> {
    let backoffMs = ETCD_RETRY_MIN_MS;
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      try {
        await this.session();
        backoffMs = ETCD_RETRY_MIN_MS;
      } catch (err) {
        if (signal.aborted) break;
        this.firstTry();
        // Whatever lease this session had is gone: nothing is led with it.
        this.lease = null;
        this.leaseId = null;
        this.provenUntilMs = 0;
        this.refresh();
        if (!(err instanceof EtcdLeaseInvalidError)) this.setUp(false, err);
        else this.log.warn('ha: lease lost (etcd expired it): taking a new one');
        await sleep(backoffMs, signal);
        backoffMs = Math.min(backoffMs * 2, ETCD_RETRY_MAX_MS);
      }
    }
  }

  /** One lease: grant, register, sync and campaign, then keep it alive until it is lost. */
  private async session(): Promise<void> {
    const signal = this.stopping.signal;
    const lease = this.ns.lease(this.ttlMs / 1000, { autoKeepAlive: false, deadline: Date.now() + ETCD_CALL_TIMEOUT_MS });
    lease.on('lost', () => undefined);
    const grantSentMs = this.mono();
    let leaseId: string;
    try {
      leaseId = await this.track(lease.grant(), false);
    } catch (err) {
      lease.release();
      throw err;
    }
    if (signal.aborted) {
      await lease.revoke().catch(() => undefined);
      return;
    }
    this.lease = lease;
    this.leaseId = leaseId;
    this.provenUntilMs = grantSentMs + this.ttlMs;
    this.needsSync = true;
    this.log.info({ id: this.id, lease: leaseId, ttlMs: this.ttlMs }, 'ha: lease granted');
    const intervalMs = Math.max(100, Math.floor(this.ttlMs / 4));
    let nextKeepAliveMs = this.mono() + intervalMs;
    while (!signal.aborted) {
      if (this.needsSync) {
        try {
          this.needsSync = false;
          await this.sync(lease);
        } catch (err) {
          this.needsSync = true;
          if (err instanceof EtcdLeaseInvalidError) throw err;
        }
      }
      const waitMs = nextKeepAliveMs - this.mono();
      if (waitMs > 0) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          void sleep(waitMs, signal).then(resolve);
        });
        this.wake = null;
        if (this.mono() < nextKeepAliveMs && !signal.aborted) continue; // woken to sync
      }
      if (signal.aborted) return;
      nextKeepAliveMs = this.mono() + intervalMs;
      const sentMs = this.mono();
      try {
        await this.track(lease.keepaliveOnce({ deadline: Date.now() + ETCD_CALL_TIMEOUT_MS }), false);
        if (signal.aborted) return;
        this.provenUntilMs = Math.max(this.provenUntilMs, sentMs + this.ttlMs);
        this.scheduleProofCheck();
        this.refresh();
      } catch (err) {
        if (err instanceof EtcdLeaseInvalidError) {
          this.lease = null;
          this.leaseId = null;
          this.provenUntilMs = 0;
          this.refresh();
          throw err;
        }
      }
    }
  }

  /** Re-checks leadership when the proof runs out (a keep-alive may not come back in time). */
  private scheduleProofCheck(): void {
    if (this.proofTimer !== null) clearTimeout(this.proofTimer);
    this.proofTimer = setTimeout(() => {
      this.proofTimer = null;
      this.refresh();
    }, Math.max(0, this.provenUntilMs - this.mono()) + 1);
    this.proofTimer.unref();
  }

  /** Registration, a fresh read of balancers, leaders, configs and watched docs, then a campaign for every leaderless group. */
  private async sync(lease: Lease): Promise<void> {
    const self = this.options.self();
    await this.track(lease.put(`balancers/${this.id}`).value(JSON.stringify({ id: this.id, ...self })).exec());
    const [balancers, leaders, configs] = await Promise.all([
      this.track(this.ns.getAll().prefix('balancers/').exec()),
      this.track(this.ns.getAll().prefix('leaders/').exec()),
      this.track(this.ns.getAll().prefix('config/groups/').exec()),
    ]);
    this.known.clear();
    for (const kv of balancers.kvs) this.applyBalancer(kv);
    for (const group of this.options.groups()) if (!this.leaders.has(group)) this.leaders.set(group, null);
    const seen = new Set<string>();
    for (const kv of leaders.kvs) {
      const group = this.groupOf(kv.key.toString('utf8'), 'leaders/');
      if (group === null) continue;
      seen.add(group);
      this.leaders.set(group, { id: kv.value.toString('utf8'), lease: kv.lease });
    }
    for (const group of this.leaders.keys()) if (!seen.has(group)) this.leaders.set(group, null);
    for (const kv of configs.kvs) this.applyConfig(kv);
    for (const [name, listeners] of this.docListeners) for (const listener of listeners) void this.readDoc(name, listener);
    this.refresh();
    await Promise.all([...this.leaders].filter(([, e]) => e === null).map(([g]) => this.campaign(g)));
    this.firstTry();
  }

  private async readDoc(name: string, listener: (value: string) => void): Promise<void> {
    try {
      const res = await this.track(this.ns.get(`docs/${name}`).exec());
      const kv = res.kvs[0];
      if (kv !== undefined && this.docListeners.get(name)?.has(listener) === true) listener(kv.value.toString('utf8'));
    } catch {
      // etcd went away: the next sync reads it again
    }
  }

  /** Creates `leaders/<group>` with this balancer's lease if nobody holds it. */
  private async campaign(group: string): Promise<void> {
    const leaseId = this.leaseId;
    if (leaseId === null || this.stopping.signal.aborted || this.campaigning.has(group)) return;
    this.campaigning.add(group);
    try {
      const key = leaderKey(group);
      const res = await this.track(this.ns.if(key, 'Create', '==', 0).then(this.ns.put(key).value(this.id).lease(leaseId)).else(this.ns.get(key)).commit());
      if (res.succeeded) {
        this.leaders.set(group, { id: this.id, lease: leaseId });
      } else {
        const kv = res.responses[0]?.response_range?.kvs[0];
        this.leaders.set(group, kv === undefined ? null : { id: kv.value.toString('utf8'), lease: kv.lease });
      }
      this.refresh();
    } catch {
      this.needsSync = true; // campaign again at the next sync
    } finally {
      this.campaigning.delete(group);
    }
  }

  /** Emits leadership changes (and logs them). */
  private refresh(): void {
    for (const group of this.leaders.keys()) {
      const now = this.isLeader(group);
      if (now === this.leading.has(group)) continue;
      if (now) {
        this.leading.add(group);
        this.leaderGains.set(group, (this.leaderGains.get(group) ?? 0) + 1);
        this.log.info({ group, id: this.id }, `ha: leading group ${group}: this balancer plans for it`);
      } else {
        this.leading.delete(group);
        const why = !this.etcdUp || this.mono() >= this.provenUntilMs ? 'leadership not proven (etcd unreachable)' : `leader is ${this.leaderOf(group) ?? 'nobody'}`;
        this.log.info({ group, id: this.id }, `ha: no longer leading group ${group}: ${why}`);
      }
      this.emit('leadershipChanged', group, now);
    }
  }

  private startWatch(): void {
    const watcher = this.client.watch().prefix(this.options.config.etcd.prefix).watcher();
    this.watcher = watcher;
    watcher.on('connected', () => {
      // Whatever was missed while disconnected is read again.
      this.needsSync = true;
      this.wake?.();
    });
    watcher.on('disconnected', () => undefined);
    // Once per cause until the watch connects again: etcd3 retries a refused watch (up to every ETCD_RETRY_MAX_MS), which would be a line a second.
    let lastCause: string | null = null;
    watcher.on('connected', () => (lastCause = null));
    watcher.on('error', (err) => {
      const cause = describeEtcdFailure(err).kind;
      if (cause === lastCause) return this.log.debug({ err: String(err) }, 'ha: etcd watch error (again)');
      lastCause = cause;
      this.log.warn({ err: String(err) }, 'ha: etcd watch error');
    });
    watcher.on('put', (kv) => this.onPut(kv));
    watcher.on('delete', (kv) => this.onDelete(kv));
  }

  private relativeKey(kv: IKeyValue): string {
    const key = kv.key.toString('utf8');
    const prefix = this.options.config.etcd.prefix;
    return key.startsWith(prefix) ? key.slice(prefix.length) : key;
  }

  private groupOf(key: string, under: string): string | null {
    const rel = key.startsWith(this.options.config.etcd.prefix) ? key.slice(this.options.config.etcd.prefix.length) : key;
    if (!rel.startsWith(under)) return null;
    try {
      return decodeURIComponent(rel.slice(under.length));
    } catch {
      this.ignore('ha_etcd_bad_key');
      return null;
    }
  }

  private ignore(reason: string): void {
    this.ignoredEntries++;
    this.options.ignored?.(reason);
  }

  private onPut(kv: IKeyValue): void {
    const key = this.relativeKey(kv);
    if (key.startsWith('balancers/')) this.applyBalancer(kv);
    else if (key.startsWith('leaders/')) {
      const group = this.groupOf(key, 'leaders/');
      if (group === null || !this.leaders.has(group)) return;
      this.leaders.set(group, { id: kv.value.toString('utf8'), lease: kv.lease });
      this.refresh();
    } else if (key.startsWith('config/groups/')) this.applyConfig(kv);
    else if (key.startsWith('docs/')) {
      const listeners = this.docListeners.get(key.slice('docs/'.length));
      if (listeners !== undefined) for (const listener of [...listeners]) listener(kv.value.toString('utf8'));
    }
  }

  private onDelete(kv: IKeyValue): void {
    const key = this.relativeKey(kv);
    if (key.startsWith('balancers/')) this.known.delete(key.slice('balancers/'.length));
    else if (key.startsWith('leaders/')) {
      const group = this.groupOf(key, 'leaders/');
      if (group === null || !this.leaders.has(group)) return;
      this.leaders.set(group, null);
      this.refresh();
      void this.campaign(group);
    }
  }

  private applyBalancer(kv: IKeyValue): void {
    // The key names the balancer (its delete removes it); the value describes it.
    const id = this.relativeKey(kv).slice('balancers/'.length);
    const info = parseJson(kv.value) as Partial<BalancerInfo> | null;
    if (!BALANCER_ID.test(id) || info === null || typeof info !== 'object') {
      this.ignore('ha_etcd_bad_registration');
      return;
    }
    if (!this.known.has(id) && this.known.size >= MAX_KNOWN_BALANCERS) {
      this.ignore('ha_etcd_too_many_balancers');
      return;
    }
    this.known.set(id, {
      id,
      address: String(info.address ?? '').slice(0, 300),
      controlAddress: String(info.controlAddress ?? '').slice(0, 300),
      adminAddress: String(info.adminAddress ?? '').slice(0, 300),
      startedAtMs: Number(info.startedAtMs ?? 0),
    });
  }

  private applyConfig(kv: IKeyValue): void {
    const group = this.groupOf(kv.key.toString('utf8'), 'config/groups/');
    if (group === null || !this.options.groups().includes(group)) return;
    const cfg = kv.value.length > MAX_ETCD_VALUE_BYTES ? null : parseRuntimeConfig(kv.value.toString('utf8'));
    if (cfg === null) {
      this.ignore('ha_etcd_bad_config');
      this.log.warn({ group }, `ha: ignored the run-time configuration of group ${group} in etcd: not a JSON object`);
      return;
    }
    this.emit('configChanged', group, cfg);
  }
}

function parseJson(value: Buffer): unknown {
  if (value.length > MAX_ETCD_VALUE_BYTES) return null;
  try {
    return JSON.parse(value.toString('utf8'));
  } catch {
    return null;
  }
}

/** A run-time config from etcd, or null when it is not an object (its fields are validated when applied). */
export function parseRuntimeConfig(text: string): GroupRuntimeConfig | null {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
    const o = v as Record<string, unknown>;
    return { ...(o as object), by: String(o['by'] ?? ''), atMs: Number(o['atMs'] ?? 0) } as GroupRuntimeConfig;
  } catch {
    return null;
  }
}

/** `leaders/<group>` (the group name percent-encoded: names may contain "/"). */
export function leaderKey(group: string): string {
  return `leaders/${encodeURIComponent(group)}`;
}

/** `config/groups/<group>` (percent-encoded like leaderKey). */
export function configKey(group: string): string {
  return `config/groups/${encodeURIComponent(group)}`;
}
