/**
 * The balancer's admin HTTP port: Prometheus metrics, a health check, and
 * the live dashboard (a static page, its JSON state, a Server-Sent Events
 * stream of snapshots and decisions, and the strategy/granularity controls).
 *
 * Every request must name the port by one of the names it is really reached
 * by (Host header: its bound address, localhost, 127.0.0.1, [::1], or
 * security.adminHosts): a web page whose own name was rebound to this
 * machine's address (DNS rebinding) is refused with 421. Reads are then open,
 * like the metrics endpoints operators scrape. Changes (POST) need the admin
 * token when one is configured; without one they are refused unless the
 * operator opted in (security.adminUnauthenticatedChanges) on a loopback-only
 * port. They must be JSON and come from the dashboard's own origin (no
 * cross-site posts). With controlTls configured the port serves HTTPS with
 * the same certificate and, with requireClientCert, the same client-certificate check.
 */
import { status as Status } from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import * as path from 'node:path';
import type { Registry as PromRegistry } from 'prom-client';
import { interval, type Subscription } from 'rxjs';
import { formatHostPort, parseListenAddress } from '../common/address';
import type { Logger } from '../common/logger';
import { WarnLimiter } from '../common/warn-limiter';
import { DEFAULT_BINDINGS_SHOWN, ledgerStatus, MAX_BINDINGS_SHOWN, parseBindingsShown, type Admin, type LedgerView } from './admin';
import { AUTH_HEADER, bearer, checkBearer } from './auth';
import { checkAdminOptIn, GRANULARITIES, parseAdminHost } from './config';
import type { DecisionLog } from './decisions';
import type { Group } from './group';
import type { Registry } from './registry';
import { strategyNames } from './strategies/index';
import { isRefusal, type Refusal } from './validate';

/** Dashboards connected at once; more are refused with 503. */
export const MAX_VIEWERS = 64;
/**
 * Bytes a viewer may have waiting in its socket before it counts as blocked:
 * a burst of decisions is queued up to this, beyond it the viewer is sent
 * nothing more (it is marked stale and gets one fresh snapshot once drained).
 */
export const VIEWER_BACKLOG_BYTES = 256 * 1024;
/** A viewer with more than this many bytes waiting (one huge frame) is closed. */
export const MAX_VIEWER_BUFFER_BYTES = 8 * 1024 * 1024;
/** A viewer blocked (not reading) for longer than this is closed, ms. */
export const MAX_VIEWER_BLOCKED_MS = 30_000;
/** Largest request body accepted, bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Members per group sent to the dashboard. */
export const MAX_MEMBERS_SHOWN = 1000;

export interface AdminHttpOptions {
  admin: Admin;
  registry: Registry;
  decisions: DecisionLog;
  metrics: PromRegistry;
  /** The admin token: required for changes when set. */
  token: string | null;
  /**
   * Changes without a token are allowed (security.adminUnauthenticatedChanges);
   * listen() refuses it unless the port is loopback-only.
   */
  unauthenticatedChanges?: boolean;
  /** Extra names the port answers to (security.adminHosts): "host" (any port) or "host:port". */
  hosts?: readonly string[];
  tls: { cert: Buffer; key: Buffer; ca: Buffer | null; requireClientCert: boolean } | null;
  pushIntervalMs: number;
  log: Logger;
  refused: (reason: string) => void;
  /** Addresses and start time shown on the dashboard. */
  info: () => { address: string; controlAddress: string; startedAtMs: number };
  /** The /healthz text (200 either way: a degraded balancer still serves); absent: "ok". */
  health?: () => string;
  /** The `ha` object of /api/state (balancers, leader per group, etcd health); absent without HA. */
  ha?: () => unknown;
}

/** The dashboard's view of one group: its members, and its ledger's most recent bindings and last plan. */
export interface GroupSnapshot extends LedgerView {
  name: string;
  strategy: string;
  params: Record<string, number>;
  granularity: string;
  metric: string;
  reportIntervalMs: number;
  counters: Group['counters'];
  memberCount: number;
  members: {
    id: string;
    address: string;
    state: string;
    rawLoad: number;
    load: number;
    callsPerS: number;
    inFlight: number;
    clients: number;
    reports: number;
    lastReportAgeMs: number;
  }[];
}

/** A group as the dashboard shows it, with its `bindings` most recent bindings (capped at MAX_BINDINGS_SHOWN). */
export function groupSnapshot(group: Group, nowMs: number, bindings = DEFAULT_BINDINGS_SHOWN): GroupSnapshot {
  const members = [...group.members.values()].slice(0, MAX_MEMBERS_SHOWN);
  return {
    name: group.name,
    strategy: group.strategyName,
    params: group.config.strategy.params,
    granularity: group.granularity,
    metric: group.config.metric,
    reportIntervalMs: group.config.reportIntervalMs,
    counters: { ...group.counters },
    memberCount: group.members.size,
    members: members.map((m) => ({
      id: m.id,
      address: m.address,
      state: m.state,
      rawLoad: m.rawLoad,
      load: m.load,
      callsPerS: m.latest?.callsPerS ?? 0,
      inFlight: m.latest?.inFlight ?? 0,
      clients: m.clients.size,
      reports: m.reports,
      lastReportAgeMs: Math.max(0, nowMs - m.lastReportAtMs),
    })),
    ...ledgerStatus(group, bindings),
  };
}

/** Finds the dashboard's static files (beside the sources or the build). */
function findDashboardDir(): string | null {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'dashboard');
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
    dir = path.dirname(dir);
  }
  return null;
}

function uplotFile(name: string): string | null {
  try {
    return path.join(path.dirname(require.resolve('uplot/package.json')), 'dist', name);
  } catch {
    return null;
  }
}

const STATIC: Record<string, { file: () => string | null; type: string }> = {
  '/': { file: () => dashboardFile('index.html'), type: 'text/html; charset=utf-8' },
  '/index.html': { file: () => dashboardFile('index.html'), type: 'text/html; charset=utf-8' },
  '/app.js': { file: () => dashboardFile('app.js'), type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: () => dashboardFile('style.css'), type: 'text/css; charset=utf-8' },
  '/favicon.svg': { file: () => dashboardFile('favicon.svg'), type: 'image/svg+xml' },
  '/vendor/uPlot.iife.min.js': { file: () => uplotFile('uPlot.iife.min.js'), type: 'text/javascript; charset=utf-8' },
  '/vendor/uPlot.min.css': { file: () => uplotFile('uPlot.min.css'), type: 'text/css; charset=utf-8' },
};

let dashboardDir: string | null | undefined;
function dashboardFile(name: string): string | null {
  if (dashboardDir === undefined) dashboardDir = findDashboardDir();
  return dashboardDir === null ? null : path.join(dashboardDir, name);
}

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  // Not no-referrer: under it the Fetch standard has the page's own POSTs sent
  // with "Origin: null", which changes refuse (a sandboxed attacker page sends that too).
  'referrer-policy': 'same-origin',
  'x-frame-options': 'DENY',
  'content-security-policy': "default-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
};

/** HTTP status for a refusal's gRPC code. */
function httpStatus(code: Status): number {
  switch (code) {
    case Status.NOT_FOUND:
      return 404;
    case Status.INVALID_ARGUMENT:
      return 400;
    case Status.UNAUTHENTICATED:
      return 401;
    case Status.PERMISSION_DENIED:
      return 403;
    case Status.FAILED_PRECONDITION:
    case Status.ALREADY_EXISTS:
      return 409;
    default:
      return 500;
  }
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly reason: string,
    readonly headers: Record<string, string> = {},
    /** Worth a warning (someone tried what they may not), not just a debug line. */
    readonly warn = false,
  ) {
    super(message);
  }
}

interface Viewer {
  res: http.ServerResponse;
  /** More than VIEWER_BACKLOG_BYTES wait in its socket: nothing is written until it drains. */
  blocked: boolean;
  /** When it became blocked, ms since the epoch. */
  blockedSinceMs: number;
  /** Frames were skipped while it was blocked: it gets a fresh snapshot once drained. */
  stale: boolean;
  /** Remote address, for the log. */
  peer: string;
}

/** Lower-cased host and port of a Host header (port: the scheme's default when absent), or null when malformed. */
function parseHostHeader(value: string, defaultPort: number): { host: string; port: number } | null {
  const v = value.trim().toLowerCase();
  let host: string;
  let portText: string;
  if (v.startsWith('[')) {
    const close = v.indexOf(']');
    if (close < 0) return null;
    host = v.slice(1, close);
    const rest = v.slice(close + 1);
    if (rest !== '' && !rest.startsWith(':')) return null;
    portText = rest.slice(1);
  } else {
    const colon = v.indexOf(':');
    if (colon !== v.lastIndexOf(':')) return null;
    host = colon < 0 ? v : v.slice(0, colon);
    portText = colon < 0 ? '' : v.slice(colon + 1);
  }
  if (host === '') return null;
  if (portText === '') return { host, port: defaultPort };
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  return { host, port: Number(portText) };
}

export class AdminHttp {
  private server: http.Server | https.Server | null = null;
  private readonly viewers = new Set<Viewer>();
  private push: Subscription | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly expectedAuth: Buffer | null;
  /** Host:port names the port answers to (canonical, lower-cased); set by listen(). */
  private readonly allowedHostPorts = new Set<string>();
  /** Names the port answers to on any port (security.adminHosts entries without a port). */
  private readonly allowedHostsAnyPort = new Set<string>();
  private defaultPort = 80;

  /** Warn lines for refused requests, at most one per reason per second. */
  private readonly warnLimited: WarnLimiter;

  constructor(private readonly options: AdminHttpOptions) {
    this.warnLimited = new WarnLimiter(options.log);
    this.expectedAuth = options.token === null ? null : bearer(options.token);
  }

  /** Whether changes are allowed without a token. */
  private get changesOpen(): boolean {
    return this.expectedAuth === null && this.options.unauthenticatedChanges === true;
  }

  /** Fills the allowed names once the port is known. */
  private allowHosts(host: string, port: number): void {
    const add = (h: string, p: number) => this.allowedHostPorts.add(formatHostPort(h.toLowerCase(), p));
    add(host, port);
    for (const h of ['localhost', '127.0.0.1', '::1']) add(h, port);
    // A wildcard bind is reached by the machine's own addresses (IP literals cannot be rebound).
    if (host === '0.0.0.0' || host === '::') {
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) add(a.address.replace(/%.*$/, ''), port);
    }
    for (const entry of this.options.hosts ?? []) {
      const parsed = parseAdminHost(entry);
      if (typeof parsed === 'string') throw new Error(`security.adminHosts: ${JSON.stringify(entry)} ${parsed}`);
      if (parsed.port === null) this.allowedHostsAnyPort.add(parsed.host);
      else add(parsed.host, parsed.port);
    }
  }

  /** Whether a host (from a Host header or an Origin) names this port. */
  private isAllowedHost(host: string, port: number): boolean {
    return this.allowedHostsAnyPort.has(host) || this.allowedHostPorts.has(formatHostPort(host, port));
  }

  /** Refuses a request whose Host header is missing or not a name of this port. */
  private checkHost(req: http.IncomingMessage): void {
    const value = req.headers.host;
    if (value === undefined || value === '') {
      throw new HttpError(400, 'the request has no Host header; send the address you reached the admin port by', 'admin_http_bad_host', {}, true);
    }
    const parsed = parseHostHeader(value, this.defaultPort);
    if (parsed === null || !this.isAllowedHost(parsed.host, parsed.port)) {
      const shown = JSON.stringify(value.slice(0, 200));
      throw new HttpError(
        421,
        `host ${shown} is not a name of this admin port (refused against DNS rebinding); to reach it by that name, add it to security.adminHosts`,
        'admin_http_bad_host',
        {},
        true,
      );
    }
  }

  /** Binds `address` (host:port, port 0 for any) and resolves with the bound host:port. */
  async listen(address: string): Promise<string> {
    const parsed = parseListenAddress(address);
    if (typeof parsed === 'string') throw new Error(`adminListen: ${parsed}`);
    const { host, port } = parsed;
    const optIn = checkAdminOptIn({ adminUnauthenticatedChanges: this.options.unauthenticatedChanges === true }, address);
    if (optIn !== null) throw new Error(optIn);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    const tls = this.options.tls;
    const server =
      tls === null
        ? http.createServer(handler)
        : https.createServer({ cert: tls.cert, key: tls.key, ...(tls.ca !== null ? { ca: tls.ca } : {}), requestCert: tls.ca !== null, rejectUnauthorized: tls.requireClientCert }, handler);
    server.on('clientError', (_err, socket) => {
      this.options.refused('admin_http_malformed');
      socket.destroy();
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const boundPort = (server.address() as AddressInfo).port;
    this.defaultPort = tls === null ? 80 : 443;
    this.allowHosts(host, boundPort);
    this.push = interval(this.options.pushIntervalMs).subscribe(() => {
      this.dropStuckViewers();
      this.broadcastSnapshot();
    });
    this.unsubscribe = this.options.decisions.subscribe((d) => this.viewers.size > 0 && this.broadcast('decision', JSON.stringify(d)));
    return address.replace(/:[0-9]+$/, `:${boundPort}`);
  }

  async close(): Promise<void> {
    this.push?.unsubscribe();
    this.unsubscribe?.();
    for (const v of this.viewers) v.res.end();
    this.viewers.clear();
    const server = this.server;
    this.server = null;
    if (server === null) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** The dashboard's whole state, each group with its `bindings` most recent bindings. */
  private state(bindings: number): unknown {
    const now = Date.now();
    return {
      ...this.options.info(),
      ...(this.options.ha !== undefined ? { ha: this.options.ha() } : {}),
      nowMs: now,
      authRequired: this.options.token !== null,
      /** 'token': changes need the token; 'open': allowed without one (loopback opt-in); 'disabled': refused. */
      changes: this.expectedAuth !== null ? 'token' : this.changesOpen ? 'open' : 'disabled',
      strategies: strategyNames(),
      granularities: GRANULARITIES,
      pushIntervalMs: this.options.pushIntervalMs,
      groups: [...this.options.registry.groups.values()].map((g) => groupSnapshot(g, now, bindings)),
      decisions: this.options.decisions.recent(),
    };
  }

  private snapshot(): string {
    const now = Date.now();
    return JSON.stringify({ nowMs: now, groups: [...this.options.registry.groups.values()].map((g) => groupSnapshot(g, now)) });
  }

  private broadcastSnapshot(): void {
    if (this.viewers.size === 0) return;
    this.broadcast('snapshot', this.snapshot());
  }

  private broadcast(event: string, data: string, only?: Viewer): void {
    const frame = `event: ${event}\ndata: ${data}\n\n`;
    for (const viewer of only !== undefined ? [only] : [...this.viewers]) this.send(viewer, frame);
  }

  /**
   * Writes one frame to a viewer, unless it is blocked: then the frame is
   * skipped and the viewer marked stale. A viewer becomes blocked when more
   * than VIEWER_BACKLOG_BYTES wait in its socket; it then gets one 'drain'
   * listener (never more), and is closed if it holds more than
   * MAX_VIEWER_BUFFER_BYTES or stays blocked longer than MAX_VIEWER_BLOCKED_MS.
   */
  private send(viewer: Viewer, frame: string): void {
    if (viewer.blocked) {
      viewer.stale = true;
      if (Date.now() - viewer.blockedSinceMs > MAX_VIEWER_BLOCKED_MS) this.dropViewer(viewer, `blocked for more than ${MAX_VIEWER_BLOCKED_MS} ms`);
      return;
    }
    const res = viewer.res;
    if (res.write(frame) || res.writableLength < VIEWER_BACKLOG_BYTES) return;
    if (res.writableLength > MAX_VIEWER_BUFFER_BYTES) {
      this.dropViewer(viewer, `${res.writableLength} bytes waiting (limit ${MAX_VIEWER_BUFFER_BYTES})`);
      return;
    }
    viewer.blocked = true;
    viewer.blockedSinceMs = Date.now();
    res.once('drain', () => {
      viewer.blocked = false;
      if (!this.viewers.has(viewer) || !viewer.stale) return;
      viewer.stale = false;
      this.send(viewer, `event: snapshot\ndata: ${this.snapshot()}\n\n`);
    });
  }

  /** Closes viewers blocked for too long (run every push interval, so a silent balancer still notices them). */
  private dropStuckViewers(): void {
    const now = Date.now();
    for (const viewer of [...this.viewers]) {
      if (viewer.blocked && now - viewer.blockedSinceMs > MAX_VIEWER_BLOCKED_MS) this.dropViewer(viewer, `blocked for more than ${MAX_VIEWER_BLOCKED_MS} ms`);
    }
  }

  /** Closes a viewer that does not keep up; its unread frames are dropped with its socket. */
  private dropViewer(viewer: Viewer, why: string): void {
    if (!this.viewers.delete(viewer)) return;
    this.options.refused('admin_http_slow_viewer');
    this.warnLimited.warn('admin_http_slow_viewer', { peer: viewer.peer, reason: 'admin_http_slow_viewer' }, `dashboard viewer closed: it does not read its event stream (${why})`);
    viewer.res.destroy();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    try {
      this.checkHost(req);
      if (url.pathname === '/metrics') return await this.metrics(req, res);
      if (url.pathname === '/healthz') return this.text(req, res, 200, `${this.options.health?.() ?? 'ok'}\n`);
      if (url.pathname === '/api/state') return this.json(req, res, 200, this.state(bindingsParam(url)), ['GET', 'HEAD']);
      if (url.pathname === '/api/events') return this.events(req, res);
      const control = /^\/api\/groups\/([^/]+)\/(strategy|granularity)$/.exec(url.pathname);
      if (control !== null) return await this.change(req, res, control[1]!, control[2] as 'strategy' | 'granularity');
      const asset = STATIC[url.pathname];
      if (asset !== undefined) return this.file(req, res, asset.file(), asset.type);
      throw new HttpError(404, `no such page: ${url.pathname.slice(0, 200)}`, 'admin_http_not_found');
    } catch (err) {
      if (err instanceof HttpError) {
        this.options.refused(err.reason);
        const fields = { status: err.status, path: url.pathname.slice(0, 200), reason: err.reason, peer: req.socket.remoteAddress };
        if (err.warn) this.warnLimited.warn(err.reason, fields, `admin HTTP request refused: ${err.message}`);
        else this.options.log.debug(fields, err.message);
        if (!res.headersSent) this.sendJson(res, err.status, { error: err.message }, err.headers);
        else res.end();
        return;
      }
      this.options.log.error({ err, path: url.pathname.slice(0, 200) }, 'admin HTTP request failed');
      if (!res.headersSent) this.sendJson(res, 500, { error: `internal error: ${(err as Error).message}` });
      else res.end();
    }
  }

  private allow(req: http.IncomingMessage, methods: string[]): void {
    if (!methods.includes(req.method ?? '')) {
      throw new HttpError(405, `${req.method} is not allowed here (allowed: ${methods.join(', ')})`, 'admin_http_method', { allow: methods.join(', ') });
    }
  }

  private async metrics(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.allow(req, ['GET', 'HEAD']);
    const body = await this.options.metrics.metrics();
    res.writeHead(200, { 'content-type': this.options.metrics.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private text(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: string): void {
    this.allow(req, ['GET', 'HEAD']);
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private json(req: http.IncomingMessage, res: http.ServerResponse, status: number, body: unknown, methods: string[]): void {
    this.allow(req, methods);
    this.sendJson(res, status, body);
  }

  private sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS, ...headers });
    res.end(JSON.stringify(body));
  }

  private file(req: http.IncomingMessage, res: http.ServerResponse, file: string | null, type: string): void {
    this.allow(req, ['GET', 'HEAD']);
    if (file === null || !existsSync(file)) throw new HttpError(404, 'dashboard files are not installed', 'admin_http_not_found');
    const body = readFileSync(file);
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-cache', ...SECURITY_HEADERS });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private events(req: http.IncomingMessage, res: http.ServerResponse): void {
    this.allow(req, ['GET']);
    if (this.viewers.size >= MAX_VIEWERS) throw new HttpError(503, `too many dashboards connected (limit ${MAX_VIEWERS})`, 'admin_http_viewers', { 'retry-after': '5' });
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    const viewer: Viewer = { res, blocked: false, blockedSinceMs: 0, stale: false, peer: `${req.socket.remoteAddress}:${req.socket.remotePort}` };
    this.viewers.add(viewer);
    this.send(viewer, `retry: 1000\n\n`);
    this.broadcast('snapshot', this.snapshot(), viewer);
    const drop = () => this.viewers.delete(viewer);
    req.on('close', drop);
    res.on('error', drop);
  }

  /** Refuses a POST whose Origin is not a name of this port (opaque "null" origins included); clients that send none (curl) pass. */
  private checkOrigin(req: http.IncomingMessage): void {
    const origin = req.headers['origin'];
    if (origin === undefined) return;
    let allowed = false;
    try {
      const url = new URL(origin);
      const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
      allowed = (url.protocol === 'http:' || url.protocol === 'https:') && this.isAllowedHost(url.hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase(), port);
    } catch {
      allowed = false;
    }
    if (!allowed) throw new HttpError(403, `cross-origin change refused (origin ${JSON.stringify(origin.slice(0, 100))} is not this admin port)`, 'admin_http_cross_origin', {}, true);
  }

  private async change(req: http.IncomingMessage, res: http.ServerResponse, rawGroup: string, what: 'strategy' | 'granularity'): Promise<void> {
    this.allow(req, ['POST']);
    if (this.expectedAuth !== null) {
      const verdict = checkBearer(req.headers[AUTH_HEADER], this.expectedAuth);
      if (verdict !== 'ok') {
        throw new HttpError(
          401,
          `${verdict} admin token (send "authorization: Bearer <token>")`,
          verdict === 'missing' ? 'missing_token' : 'bad_token',
          { 'www-authenticate': 'Bearer realm="rebind"' },
          true,
        );
      }
    } else if (!this.changesOpen) {
      throw new HttpError(
        403,
        'changes over the admin port are disabled: set security.adminToken (or security.adminTokenFile) and send it as "authorization: Bearer <token>", ' +
          'or, with adminListen on a loopback address, opt in with security.adminUnauthenticatedChanges: true',
        'admin_http_changes_disabled',
        {},
        true,
      );
    }
    this.checkOrigin(req);
    let group: string;
    try {
      group = decodeURIComponent(rawGroup);
    } catch {
      throw new HttpError(400, `the group name in the path has a malformed percent-escape: ${JSON.stringify(rawGroup.slice(0, 200))}`, 'admin_http_bad_path');
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw new HttpError(415, `content-type must be application/json (got ${JSON.stringify(type.slice(0, 100))})`, 'admin_http_content_type');
    const body = await readBody(req);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch (err) {
      throw new HttpError(400, `body is not valid JSON: ${(err as Error).message}`, 'admin_http_bad_json');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new HttpError(400, 'body must be a JSON object', 'admin_http_bad_json');
    const input = parsed as Record<string, unknown>;
    let result: unknown | Refusal;
    if (what === 'strategy') {
      if (typeof input['strategy'] !== 'string') throw new HttpError(400, 'body.strategy must be a strategy name', 'admin_http_bad_request');
      const params = input['params'];
      if (params !== undefined && (typeof params !== 'object' || params === null || Array.isArray(params))) {
        throw new HttpError(400, 'body.params must be an object of numbers', 'admin_http_bad_request');
      }
      result = await this.options.admin.changeStrategy(group, input['strategy'], params === undefined ? '' : JSON.stringify(params));
    } else {
      if (typeof input['granularity'] !== 'string') throw new HttpError(400, `body.granularity must be one of ${GRANULARITIES.join(', ')}`, 'admin_http_bad_request');
      result = await this.options.admin.changeGranularity(group, input['granularity']);
    }
    if (isRefusal(result)) throw new HttpError(httpStatus(result.code), result.message, 'admin_http_refused');
    const g = this.options.registry.groups.get(group);
    this.sendJson(res, 200, g === undefined ? {} : groupSnapshot(g, Date.now()));
    // Viewers see the change at once, not at the next push.
    this.broadcastSnapshot();
  }
}

/** The `bindings` query parameter (how many of each group's most recent bindings to list), or the dashboard's default. */
function bindingsParam(url: URL): number {
  const raw = url.searchParams.get('bindings');
  if (raw === null) return DEFAULT_BINDINGS_SHOWN;
  const n = /^[0-9]{1,9}$/.test(raw) ? parseBindingsShown(Number(raw)) : null;
  if (n === null || isRefusal(n)) throw new HttpError(400, `bindings must be an integer 0..${MAX_BINDINGS_SHOWN} (got ${JSON.stringify(raw.slice(0, 20))})`, 'admin_http_bad_request');
  return n;
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        // Stop keeping it; the rest is read and dropped so that the answer can be sent.
        req.removeAllListeners('data');
        req.resume();
        reject(new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`, 'admin_http_too_large', { connection: 'close' }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
