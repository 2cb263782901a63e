/**
 * ORCA out-of-band load reports (gRFC A51) from a rebind replica, so that
 * standard gRPC clients can balance over rebind replicas too: grpc-js's
 * `weighted_round_robin` policy (gRFC A58) with enable_oob_load_report
 * subscribes to OpenRcaService.StreamCoreMetrics on each backend and weighs
 * it by rps_fractional / application_utilization.
 *
 * Each stream reports at the interval the client asks for (at least
 * MIN_ORCA_INTERVAL_MS): calls/s, errors/s, event-loop utilization as the
 * application utilization, and process CPU as a fraction of the machine's
 * cores. Reports are serialized by the service's own message type, loaded
 * once; nothing is done per call (grpc-js 1.14's per-call metric recorder
 * re-parses the ORCA .proto on every call, see ARCHITECTURE.md).
 *
 * Any client of the replica's port can open these streams, so each has a
 * bound (see README "Limits and defences"):
 *   - at most `maxStreams` streams at once; beyond: RESOURCE_EXHAUSTED;
 *   - one timer per distinct interval, shared by its streams, and one report
 *     computed per tick for all of them;
 *   - at most one report waits for a stream's client: while the previous one
 *     is not flushed (the client does not read, or write() asked to wait for
 *     'drain'), further reports are skipped, never queued;
 *   - a stream whose report has waited longer than `blockedTimeoutMs` is
 *     reset with RST_STREAM ENHANCE_YOUR_CALM, which grpc-js clients report
 *     as RESOURCE_EXHAUSTED. A gRPC status cannot be used: trailers go out
 *     behind the unsent data, which such a client never takes, and only a
 *     reset frees what is buffered for the stream;
 *   - the interval a client asks for is clamped to
 *     [MIN_ORCA_INTERVAL_MS, MAX_ORCA_INTERVAL_MS] (a longer one would
 *     overflow Node's timer and fire every millisecond).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as http2 from 'node:http2';
import { availableParallelism } from 'node:os';
import * as path from 'node:path';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { asyncScheduler, interval, type SchedulerLike, type Subscription } from 'rxjs';
import { packageRoot } from '../common/proto';
import { AbusiveConnections } from '../common/abusive-connections';
import type { LoadMeter } from './load-meter';
import type { RefusedCallback } from './refusals';

export const ORCA_SERVICE_PATH = '/xds.service.orca.v3.OpenRcaService/StreamCoreMetrics';
/** Shortest reporting interval a client may ask for, ms. */
export const MIN_ORCA_INTERVAL_MS = 100;
/** Interval used when the client asks for none, ms. */
export const DEFAULT_ORCA_INTERVAL_MS = 1000;
/**
 * Longest reporting interval, ms: longer asks are clamped to it (Node turns
 * a timer longer than 2^31 - 1 ms into a 1 ms one).
 */
export const MAX_ORCA_INTERVAL_MS = 3_600_000;
/** ORCA streams one replica serves at once, streams (attach option `orca.maxStreams`). */
export const DEFAULT_ORCA_MAX_STREAMS = 100;
/** How long a report may wait for a client that does not read before its stream is reset, ms (`orca.blockedTimeoutMs`). */
export const DEFAULT_ORCA_BLOCKED_TIMEOUT_MS = 10_000;
/** Accepted ranges of the ORCA options. */
export const ORCA_OPTION_RANGES = {
  maxStreams: { min: 1, max: 1_000_000, unit: 'streams' },
  blockedTimeoutMs: { min: 100, max: 3_600_000, unit: 'ms' },
} as const;

/** Bounds of the ORCA service (attach option `orca`). */
export interface OrcaOptions {
  /** Streams served at once (default DEFAULT_ORCA_MAX_STREAMS); beyond, RESOURCE_EXHAUSTED. */
  maxStreams?: number;
  /** A stream whose client has not taken a report for this long is reset, ms (default DEFAULT_ORCA_BLOCKED_TIMEOUT_MS). */
  blockedTimeoutMs?: number;
}

/**
 * Reads attach()'s `orca` option: false disables the service (null), true
 * or undefined takes the defaults. Throws a RangeError naming the field and
 * its accepted range.
 */
export function orcaSettings(raw: boolean | OrcaOptions | undefined): Required<OrcaOptions> | null {
  if (raw === false) return null;
  const given: OrcaOptions = raw === true || raw === undefined ? {} : raw;
  if (typeof given !== 'object' || given === null) throw new RangeError(`rebind attach: orca must be a boolean or { maxStreams?, blockedTimeoutMs? }, got ${String(raw)}`);
  const settings = {
    maxStreams: given.maxStreams ?? DEFAULT_ORCA_MAX_STREAMS,
    blockedTimeoutMs: given.blockedTimeoutMs ?? DEFAULT_ORCA_BLOCKED_TIMEOUT_MS,
  };
  for (const field of ['maxStreams', 'blockedTimeoutMs'] as const) {
    const { min, max, unit } = ORCA_OPTION_RANGES[field];
    const value: unknown = settings[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`rebind attach: orca.${field} must be an integer from ${min} to ${max} (${unit}), got ${String(value)}`);
    }
  }
  return settings;
}

let definition: grpc.ServiceDefinition | null = null;

/** The OpenRcaService definition (loaded once). */
export function orcaServiceDefinition(): grpc.ServiceDefinition {
  if (definition === null) {
    const packageDefinition = protoLoader.loadSync(path.join(packageRoot(), 'proto/xds/orca.proto'), {
      keepCase: true,
      longs: Number,
      defaults: true,
    });
    const loaded = grpc.loadPackageDefinition(packageDefinition) as unknown as {
      xds: { service: { orca: { v3: { OpenRcaService: grpc.ServiceClientConstructor } } } };
    };
    definition = loaded.xds.service.orca.v3.OpenRcaService.service;
  }
  return definition;
}

interface OrcaRequest {
  report_interval?: { seconds?: number; nanos?: number } | null;
}

/** What the ORCA service needs besides the meter. */
export interface OrcaServiceOptions extends OrcaOptions {
  /** Scheduler of the report tickers (default rxjs asyncScheduler). */
  scheduler?: SchedulerLike;
  /**
   * Told when a bound bites: `orca_streams` (stream refused), `orca_report_skipped`
   * (a report not sent because the previous one is still buffered),
   * `orca_stream_blocked` (stream reset).
   */
  refused?: RefusedCallback;
}

/** The OpenRcaService implementation, with what it holds now (for tests and diagnostics). */
export interface OrcaService {
  handlers: grpc.UntypedServiceImplementation;
  /** Streams holding a slot (served, or reset and not yet closed by the transport). */
  readonly streams: number;
  /** Distinct intervals with a running ticker. */
  readonly tickers: number;
}

/** One stream's state. */
interface OrcaStream {
  call: grpc.ServerWritableStream<OrcaRequest, unknown>;
  /** A report handed to the call is not flushed yet (its write callback has not run). */
  pending: boolean;
  /** write() returned false: wait for 'drain'. */
  needDrain: boolean;
  /** When the report still waiting was written (scheduler ms). */
  waitingSinceMs: number;
}

/** One timer per distinct interval; one report per tick, sent to each of its streams. */
interface Ticker {
  streams: Set<OrcaStream>;
  subscription: Subscription;
  calls: number;
  errors: number;
  elu: EventLoopUtilization;
  cpu: NodeJS.CpuUsage;
  atMs: number;
}

/** The interval a request asks for, clamped to [MIN_ORCA_INTERVAL_MS, MAX_ORCA_INTERVAL_MS], ms. */
export function orcaIntervalMs(request: OrcaRequest): number {
  const asked = request.report_interval;
  const askedMs = asked ? Number(asked.seconds ?? 0) * 1000 + Number(asked.nanos ?? 0) / 1e6 : 0;
  if (!Number.isFinite(askedMs) || askedMs <= 0) return DEFAULT_ORCA_INTERVAL_MS;
  return Math.round(Math.min(MAX_ORCA_INTERVAL_MS, Math.max(MIN_ORCA_INTERVAL_MS, askedMs)));
}

/**
 * The HTTP/2 stream under a grpc-js server call, found through grpc-js
 * 1.14's internals (ServerWritableStreamImpl.call -> ServerInterceptingCall
 * .nextCall ... -> BaseServerInterceptingCall.stream); null if they changed.
 */
function http2StreamOf(call: unknown): http2.Http2Stream | null {
  let node = (call as { call?: unknown }).call;
  for (let depth = 0; depth < 16 && typeof node === 'object' && node !== null; depth++) {
    const stream = (node as { stream?: Partial<http2.Http2Stream> }).stream;
    if (typeof stream === 'object' && stream !== null && typeof stream.close === 'function' && 'rstCode' in stream) return stream as http2.Http2Stream;
    node = (node as { nextCall?: unknown }).nextCall;
  }
  return null;
}

/** The StreamCoreMetrics service over a replica's meter, with its bounds. */
export function createOrcaService(meter: LoadMeter, options: OrcaServiceOptions = {}): OrcaService {
  const scheduler = options.scheduler ?? asyncScheduler;
  const { maxStreams, blockedTimeoutMs } = orcaSettings(options)!;
  const refused = options.refused ?? (() => undefined);
  const cores = availableParallelism();
  const tickers = new Map<number, Ticker>();
  let slots = 0;
  const abusive = new AbusiveConnections();

  const report = (t: Ticker) => {
    const now = scheduler.now();
    const seconds = Math.max(1e-3, (now - t.atMs) / 1000);
    const eluNow = performance.eventLoopUtilization(t.elu);
    const cpuNow = process.cpuUsage(t.cpu);
    const message = {
      rps_fractional: (meter.totalCalls - t.calls) / seconds,
      eps: (meter.totalErrors - t.errors) / seconds,
      application_utilization: Math.min(1, Math.max(0, eluNow.utilization)),
      cpu_utilization: (cpuNow.user + cpuNow.system) / 1e6 / seconds / cores,
    };
    t.calls = meter.totalCalls;
    t.errors = meter.totalErrors;
    t.elu = performance.eventLoopUtilization();
    t.cpu = process.cpuUsage();
    t.atMs = now;
    return message;
  };

  /** Ends a stream whose client does not take its reports: the reset drops what is buffered for it. */
  const reset = (s: OrcaStream, t: Ticker, everyMs: number) => {
    t.streams.delete(s);
    refused(
      'orca_stream_blocked',
      `ORCA stream from ${s.call.getPeer()} reset (RST_STREAM ENHANCE_YOUR_CALM, RESOURCE_EXHAUSTED to the client): its client took no report for ${blockedTimeoutMs} ms (orca.blockedTimeoutMs), interval ${everyMs} ms`,
    );
    const stream = http2StreamOf(s.call);
    if (stream !== null) {
      if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    } else {
      // grpc-js internals changed: end the call; its slot stays taken until the transport closes it.
      s.call.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: `rebind: the client took no ORCA report for ${blockedTimeoutMs} ms` });
    }
  };

  const tick = (t: Ticker, everyMs: number) => {
    if (t.streams.size === 0) return;
    const message = report(t);
    const now = scheduler.now();
    for (const s of t.streams) {
      if (s.call.cancelled) continue;
      if (s.pending || s.needDrain) {
        // Skipped, never queued: the report it waits to send is as good as this one.
        if (now - s.waitingSinceMs >= blockedTimeoutMs) reset(s, t, everyMs);
        else refused('orca_report_skipped', `ORCA report to ${s.call.getPeer()} skipped: its client has not taken the previous one yet (one report is buffered per stream at most)`);
        continue;
      }
      s.pending = true;
      s.waitingSinceMs = now;
      const more = s.call.write(message, () => {
        s.pending = false;
      });
      if (!more) {
        s.needDrain = true;
        s.call.once('drain', () => {
          s.needDrain = false;
        });
      }
    }
  };

  const join = (s: OrcaStream, everyMs: number): Ticker => {
    let t = tickers.get(everyMs);
    if (t === undefined) {
      const created: Ticker = {
        streams: new Set(),
        subscription: null as unknown as Subscription,
        calls: meter.totalCalls,
        errors: meter.totalErrors,
        elu: performance.eventLoopUtilization(),
        cpu: process.cpuUsage(),
        atMs: scheduler.now(),
      };
      created.subscription = interval(everyMs, scheduler).subscribe(() => tick(created, everyMs));
      tickers.set(everyMs, created);
      t = created;
    }
    t.streams.add(s);
    return t;
  };

  const leave = (s: OrcaStream, t: Ticker, everyMs: number) => {
    t.streams.delete(s);
    if (t.streams.size === 0 && tickers.get(everyMs) === t) {
      t.subscription.unsubscribe();
      tickers.delete(everyMs);
    }
  };

  const handlers: grpc.UntypedServiceImplementation = {
    StreamCoreMetrics(call: grpc.ServerWritableStream<OrcaRequest, unknown>) {
      if (slots >= maxStreams) {
        refused('orca_streams', `ORCA stream from ${call.getPeer()} refused with RESOURCE_EXHAUSTED: ${maxStreams} streams already open (orca.maxStreams)`);
        call.emit('error', {
          code: grpc.status.RESOURCE_EXHAUSTED,
          details: `rebind: this replica serves at most ${maxStreams} ORCA streams (orca.maxStreams); all are in use, try again later`,
        });
        // A connection that keeps opening streams only to be refused is closed.
        if (abusive.refused(http2StreamOf(call)?.session)) refused('orca_connection_abusive', `closed the connection of ${call.getPeer()}: too many refused ORCA streams`);
        return;
      }
      slots++;
      const everyMs = orcaIntervalMs(call.request);
      const s: OrcaStream = { call, pending: false, needDrain: false, waitingSinceMs: 0 };
      const t = join(s, everyMs);
      let released = false;
      // The slot is given back when the transport is done with the stream, not when we give up on it.
      const release = () => {
        if (released) return;
        released = true;
        slots--;
        leave(s, t, everyMs);
      };
      call.on('cancelled', release);
      call.on('close', release);
    },
  };

  return {
    handlers,
    get streams() {
      return slots;
    },
    get tickers() {
      return tickers.size;
    },
  };
}

/** The StreamCoreMetrics handler over a replica's meter (see createOrcaService). */
export function orcaHandlers(meter: LoadMeter, options: OrcaServiceOptions = {}): grpc.UntypedServiceImplementation {
  return createOrcaService(meter, options).handlers;
}
