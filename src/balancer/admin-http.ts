/**
 * The balancer's admin HTTP port: Prometheus metrics, a health check, and
 * the live dashboard (a static page, its JSON state, a Server-Sent Events
 * stream of snapshots and decisions, and the strategy/granularity controls).
 *
 * Reads are open, like the metrics endpoints operators scrape. Changes
 * (POST) take the control plane's token when one is configured, must be
 * JSON, and must come from the dashboard's own origin (no cross-site form
 * posts). With controlTls configured the port serves HTTPS with the same
 * certificate and, with requireClientCert, the same client-certificate check.
 */
import { status as Status } from '@grpc/grpc-js';
import { existsSync, readFileSync } from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import type { Registry as PromRegistry } from 'prom-client';
import { interval, type Subscription } from 'rxjs';
import { parseListenAddress } from '../common/address';
import type { Logger } from '../common/logger';
import type { Admin } from './admin';
import { AUTH_HEADER, bearer, checkBearer } from './auth';
import { GRANULARITIES } from './config';
import type { DecisionLog } from './decisions';
import type { Group } from './group';
import type { Registry } from './registry';
import { strategyNames } from './strategies/index';
import { isRefusal, type Refusal } from './validate';

/** Dashboards connected at once; more are refused with 503. */
export const MAX_VIEWERS = 64;
/** Largest request body accepted, bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Members per group sent to the dashboard. */
export const MAX_MEMBERS_SHOWN = 1000;

export interface AdminHttpOptions {
  admin: Admin;
  registry: Registry;
  decisions: DecisionLog;
  metrics: PromRegistry;
  /** The control plane's token: required for changes when set. */
  token: string | null;
  tls: { cert: Buffer; key: Buffer; ca: Buffer | null; requireClientCert: boolean } | null;
  pushIntervalMs: number;
  log: Logger;
  refused: (reason: string) => void;
  /** Addresses and start time shown on the dashboard. */
  info: () => { address: string; controlAddress: string; startedAtMs: number };
}

/** The dashboard's view of one group. */
export interface GroupSnapshot {
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

export function groupSnapshot(group: Group, nowMs: number): GroupSnapshot {
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
  'referrer-policy': 'no-referrer',
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
  ) {
    super(message);
  }
}

interface Viewer {
  res: http.ServerResponse;
  /** Its socket buffer is full: snapshots are skipped until it drains. */
  blocked: boolean;
}

export class AdminHttp {
  private server: http.Server | https.Server | null = null;
  private readonly viewers = new Set<Viewer>();
  private push: Subscription | null = null;
  private unsubscribe: (() => void) | null = null;
  private readonly expectedAuth: Buffer | null;

  constructor(private readonly options: AdminHttpOptions) {
    this.expectedAuth = options.token === null ? null : bearer(options.token);
  }

  /** Binds `address` (host:port, port 0 for any) and resolves with the bound host:port. */
  async listen(address: string): Promise<string> {
    const parsed = parseListenAddress(address);
    if (typeof parsed === 'string') throw new Error(`adminListen: ${parsed}`);
    const { host, port } = parsed;
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
    this.push = interval(this.options.pushIntervalMs).subscribe(() => this.broadcastSnapshot());
    this.unsubscribe = this.options.decisions.subscribe((d) => this.viewers.size > 0 && this.broadcast('decision', JSON.stringify(d)));
    return address.replace(/:[0-9]+$/, `:${(server.address() as AddressInfo).port}`);
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

  private state(): unknown {
    const now = Date.now();
    return {
      ...this.options.info(),
      nowMs: now,
      authRequired: this.options.token !== null,
      strategies: strategyNames(),
      granularities: GRANULARITIES,
      pushIntervalMs: this.options.pushIntervalMs,
      groups: [...this.options.registry.groups.values()].map((g) => groupSnapshot(g, now)),
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
    for (const viewer of only !== undefined ? [only] : this.viewers) {
      if (viewer.blocked && event === 'snapshot') continue;
      if (!viewer.res.write(frame)) {
        viewer.blocked = true;
        viewer.res.once('drain', () => (viewer.blocked = false));
      }
    }
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin');
    try {
      if (url.pathname === '/metrics') return await this.metrics(req, res);
      if (url.pathname === '/healthz') return this.text(req, res, 200, 'ok\n');
      if (url.pathname === '/api/state') return this.json(req, res, 200, this.state(), ['GET', 'HEAD']);
      if (url.pathname === '/api/events') return this.events(req, res);
      const control = /^\/api\/groups\/([^/]+)\/(strategy|granularity)$/.exec(url.pathname);
      if (control !== null) return await this.change(req, res, decodeURIComponent(control[1]!), control[2] as 'strategy' | 'granularity');
      const asset = STATIC[url.pathname];
      if (asset !== undefined) return this.file(req, res, asset.file(), asset.type);
      throw new HttpError(404, `no such page: ${url.pathname.slice(0, 200)}`, 'admin_http_not_found');
    } catch (err) {
      if (err instanceof HttpError) {
        this.options.refused(err.reason);
        this.options.log.debug({ status: err.status, path: url.pathname.slice(0, 200), reason: err.reason }, err.message);
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
    const viewer: Viewer = { res, blocked: false };
    this.viewers.add(viewer);
    res.write(`retry: 1000\n\n`);
    this.broadcast('snapshot', this.snapshot(), viewer);
    const drop = () => this.viewers.delete(viewer);
    req.on('close', drop);
    res.on('error', drop);
  }

  private async change(req: http.IncomingMessage, res: http.ServerResponse, group: string, what: 'strategy' | 'granularity'): Promise<void> {
    this.allow(req, ['POST']);
    if (this.expectedAuth !== null) {
      const verdict = checkBearer(req.headers[AUTH_HEADER], this.expectedAuth);
      if (verdict !== 'ok') {
        throw new HttpError(401, `${verdict} control token (send "authorization: Bearer <token>")`, verdict === 'missing' ? 'missing_token' : 'bad_token', {
          'www-authenticate': 'Bearer realm="rebind"',
        });
      }
    }
    const origin = req.headers['origin'];
    if (origin !== undefined && origin !== 'null') {
      let originHost: string;
      try {
        originHost = new URL(origin).host;
      } catch {
        originHost = '';
      }
      if (originHost !== req.headers.host) throw new HttpError(403, `cross-origin change refused (origin ${origin.slice(0, 100)})`, 'admin_http_cross_origin');
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
      result = this.options.admin.setStrategy(group, input['strategy'], params === undefined ? '' : JSON.stringify(params));
    } else {
      if (typeof input['granularity'] !== 'string') throw new HttpError(400, `body.granularity must be one of ${GRANULARITIES.join(', ')}`, 'admin_http_bad_request');
      result = this.options.admin.setGranularity(group, input['granularity']);
    }
    if (isRefusal(result)) throw new HttpError(httpStatus(result.code), result.message, 'admin_http_refused');
    const g = this.options.registry.groups.get(group);
    this.sendJson(res, 200, g === undefined ? {} : groupSnapshot(g, Date.now()));
    // Viewers see the change at once, not at the next push.
    this.broadcastSnapshot();
  }
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
