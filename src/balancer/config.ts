/**
 * Balancer configuration: types, defaults (named constants with units) and
 * validation. Configuration is validated once, at the edge: every invalid
 * field is an error that names the field and the accepted range, never a
 * silent default.
 */
import { BlockList, isIP } from 'node:net';
import { parseHostPort, parseListenAddress } from '../common/address';
import { METRICS, type Metric } from './metrics';
import { parseParams } from './strategies/params';
import { strategyFactory, strategyNames } from './strategies/index';

export const GRANULARITIES = ['per-session', 'per-request', 'on-demand'] as const;
/** When the balancer binds a client to a replica; see README "Binding granularities". */
export type Granularity = (typeof GRANULARITIES)[number];

export const DEFAULT_LISTEN = '127.0.0.1:50051';
export const DEFAULT_CONTROL_LISTEN = '127.0.0.1:50052';
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:50053';
export const DEFAULT_DASHBOARD_PUSH_INTERVAL_MS = 1000;
export const DEFAULT_REPORT_INTERVAL_MS = 1000;
export const DEFAULT_MISSED_REPORTS = 3;
export const DEFAULT_DAMPENING = 0.5;
export const DEFAULT_HOLD_MS = 10_000;
export const DEFAULT_SETTLE_REPORTS = 2;
export const DEFAULT_TOP_CLIENTS = 32;
export const DEFAULT_GRANULARITY: Granularity = 'on-demand';
export const DEFAULT_STRATEGY = 'minimum_dispersion';
export const DEFAULT_METRIC: Metric = 'calls_per_s';
export const DEFAULT_MAX_MEMBERS = 1000;
export const DEFAULT_ADVISORY_EXPIRE_MS = 5000;
export const DEFAULT_PLAN_MIN_CALLS = 10;
/**
 * k: members a planned binding may have, members. 4 lets a client carry up
 * to 4x a member's mean load at exact balance and gives the per-call pick
 * inside a binding three other members to steer to when one slows down,
 * while costing each client at most 4 connections per group (a binding of 16
 * would be 16 connections per client and 16x the replicas' client count).
 * Per-request (direct) bindings are not bound by it: they name every member
 * (up to 16 per shard).
 */
export const DEFAULT_MAX_BINDING_SIZE = 4;
/** The smallest part of a client's load a planned share may carry (no dust), fraction of the client's load. */
export const DEFAULT_MIN_SHARE = 0.1;

/** Configuration of one replica group. */
export interface GroupConfig {
  /** Group name replicas attach to, e.g. "stock.SessionFactory". */
  name: string;
  granularity: Granularity;
  strategy: { name: string; params: Record<string, number> };
  metric: Metric;
  /** d in dampened = d·previous + (1−d)·reported; 0 ≤ d < 1. */
  dampening: number;
  /** How often replicas of this group report load, ms. */
  reportIntervalMs: number;
  /** A member that misses this many consecutive reports is removed. */
  missedReports: number;
  /** A moved client is not moved again for this long, ms (hysteresis). */
  holdMs: number;
  /** After a plan, wait for this many reports from each member before the next. */
  settleReports: number;
  /** Replicas list this many busiest clients per report. */
  topClients: number;
  /** A replica drops an advisory move it could not execute after this long, ms. */
  advisoryExpireMs: number;
  /** Upper bound on members in the group. */
  maxMembers: number;
  /**
   * No plan while members average fewer calls than this per report interval:
   * loads that sparse (a group just started, or idle) are noise to act on.
   */
  planMinCalls: number;
  /** k: members a planned binding of a client that understands weighted bindings may have. */
  maxBindingSize: number;
  /** No planned share carries less than this fraction of its client's load. */
  minShare: number;
}

/** TLS files of a listening port. */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** CA that client certificates must chain to (mTLS); null: no client certificates. */
  caFile: string | null;
  /** Refuse connections without a client certificate signed by caFile. */
  requireClientCert: boolean;
}

/** Who may use the control plane, and how the ports are encrypted. */
export interface SecurityConfig {
  /**
   * Token replicas present to attach ("authorization: Bearer <token>"); null:
   * attaching needs no token. It grants attaching and reporting, nothing else.
   */
  replicaToken: string | null;
  /** A file holding the replica token (read at start), instead of `replicaToken`. */
  replicaTokenFile: string | null;
  /**
   * Token for the Admin API and the dashboard's changes; null: changes are
   * accepted without one only from a loopback control port (and, for the
   * admin HTTP port, only when explicitly opted in).
   */
  adminToken: string | null;
  /** A file holding the admin token (read at start), instead of `adminToken`. */
  adminTokenFile: string | null;
  /** TLS (and mTLS with caFile + requireClientCert) on the control port. */
  controlTls: TlsFiles | null;
  /** TLS on the data port. */
  dataTls: TlsFiles | null;
  /** CA the balancer trusts when it proxies to replicas that serve TLS; null: replicas are plaintext. */
  upstreamCaFile: string | null;
  /**
   * With mTLS on the control port: addresses a certificate identity (a SAN
   * DNS name, IP or URI, or the subject CN) may attach as, besides the IPs and
   * DNS names in its own subjectAltName. Values are host:port, or a host for
   * any port.
   */
  replicaIdentities: Record<string, string[]>;
  /**
   * Extra names (host, or host:port) the admin port answers to, besides its
   * bound address, localhost, 127.0.0.1 and [::1] on its port: requests with
   * any other Host header are refused (DNS rebinding). Lower-cased.
   */
  adminHosts: string[];
  /**
   * Allow changes on the admin port without a token. Only accepted when
   * adminListen is a loopback address: anyone who can reach the port could
   * change strategies otherwise.
   */
  adminUnauthenticatedChanges: boolean;
}

/** Limits on what the control plane accepts. */
export interface LimitsConfig {
  /** Largest control message, bytes. */
  maxControlMessageBytes: number;
  /** Reports beyond this many per report interval are refused as a flood. */
  maxReportsPerInterval: number;
  /** Methods one replica may advertise. */
  maxMethodsPerReplica: number;
  /** Groups that replicas may create by attaching (autoCreateGroups); more are refused. */
  maxAutoGroups: number;
  /** An auto-created group with no member for this long is removed, ms. */
  autoGroupIdleMs: number;
  /** Binds per caller (remote address) per report interval that count toward members' projected loads. */
  maxPendingBindsPerCaller: number;
  /** A control stream that has not said hello within this long is closed, ms. */
  helloTimeoutMs: number;
  /** Control streams waiting for their hello at once; more are refused. */
  maxPendingAttachments: number;
  /** Refused control messages per report interval after which an attachment is closed as a flood. */
  maxRefusedPerInterval: number;
  /** Client connections the data port holds at once; more are closed at once. */
  maxDataConnections: number;
  /** Concurrent streams per client connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS). */
  maxStreamsPerDataConnection: number;
  /** A client connection with no open stream for this long is closed (GOAWAY), ms. */
  dataIdleTimeoutMs: number;
  /** Proxied calls one caller (client address) may have in flight at once; more get RESOURCE_EXHAUSTED. */
  maxProxiedCallsPerCaller: number;
  /**
   * Members (over all groups, in group order, then attachment order) whose
   * per-member series /metrics exports; the others are counted in
   * rebind_member_series_omitted. Bounds a scrape's cost and the series a
   * fleet of attaching replicas makes Prometheus store.
   */
  maxMemberSeries: number;
}

export const DEFAULT_MAX_CONTROL_MESSAGE_BYTES = 256 * 1024;
export const DEFAULT_MAX_REPORTS_PER_INTERVAL = 4;
export const DEFAULT_MAX_METHODS_PER_REPLICA = 2_000;
export const DEFAULT_MAX_AUTO_GROUPS = 100;
export const DEFAULT_AUTO_GROUP_IDLE_MS = 60_000;
export const DEFAULT_MAX_PENDING_BINDS_PER_CALLER = 16;
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
export const DEFAULT_MAX_PENDING_ATTACHMENTS = 1000;
export const DEFAULT_MAX_REFUSED_PER_INTERVAL = 100;
export const DEFAULT_MAX_DATA_CONNECTIONS = 10_000;
export const DEFAULT_MAX_STREAMS_PER_DATA_CONNECTION = 1000;
export const DEFAULT_DATA_IDLE_TIMEOUT_MS = 300_000;
export const DEFAULT_MAX_PROXIED_CALLS_PER_CALLER = 100;
/**
 * Members with per-member series on /metrics (6 series each): a group's
 * default maxMembers, so a default group is shown whole; rendering them
 * costs ~1 ms per scrape (bench/metrics.ts).
 */
export const DEFAULT_MAX_MEMBER_SERIES = 1000;

/** The xDS management server (ADS + LRS on the control port) for proxyless gRPC clients in any language. */
export interface XdsConfig {
  /** Serve xDS on the control port. */
  enabled: boolean;
  /** ADS streams served at once; more are refused with RESOURCE_EXHAUSTED. */
  maxStreams: number;
  /** Resource names one stream may subscribe to per resource type. */
  maxNamesPerType: number;
  /**
   * Serve xDS clients that neither come from loopback nor present a client
   * certificate the control port verified (mTLS). Off: such streams are
   * refused with UNAUTHENTICATED.
   */
  allowUnauthenticated: boolean;
}

export const DEFAULT_XDS_MAX_STREAMS = 10_000;
export const DEFAULT_XDS_MAX_NAMES_PER_TYPE = 64;

/** Built-in xDS settings. */
export function builtinXds(): XdsConfig {
  return { enabled: true, maxStreams: DEFAULT_XDS_MAX_STREAMS, maxNamesPerType: DEFAULT_XDS_MAX_NAMES_PER_TYPE, allowUnauthenticated: false };
}

const XDS_NUMBER_RULES: NumberRule<'maxStreams' | 'maxNamesPerType'>[] = [
  { key: 'maxStreams', min: 1, max: 1_000_000, integer: true, unit: 'streams' },
  { key: 'maxNamesPerType', min: 1, max: 10_000, integer: true, unit: 'resource names' },
];

function parseXds(raw: unknown, errors: string[]): XdsConfig {
  const out = builtinXds();
  if (raw === undefined) return out;
  if (!isObject(raw)) {
    errors.push('xds must be an object');
    return out;
  }
  const keys = ['enabled', 'allowUnauthenticated', ...XDS_NUMBER_RULES.map((r) => r.key)];
  for (const key of Object.keys(raw)) if (!keys.includes(key)) errors.push(`xds.${key} is not an xds setting (accepted: ${keys.join(', ')})`);
  for (const key of ['enabled', 'allowUnauthenticated'] as const) {
    if (raw[key] === undefined) continue;
    if (typeof raw[key] !== 'boolean') errors.push(`xds.${key} must be true or false`);
    else out[key] = raw[key] as boolean;
  }
  for (const rule of XDS_NUMBER_RULES) {
    if (raw[rule.key] === undefined) continue;
    const v = checkNumber(raw[rule.key], rule, `xds.${rule.key}`, errors);
    if (v !== undefined) out[rule.key] = v;
  }
  return out;
}

/** etcd's TLS files (the client side: the CA that signs etcd's certificate, and an optional client certificate). */
export interface EtcdTlsFiles {
  caFile: string;
  certFile: string | null;
  keyFile: string | null;
}

/** Where the balancers' shared etcd is and how to reach it. */
export interface EtcdConfig {
  /** Client URLs of the etcd cluster, http(s)://host:port. */
  endpoints: string[];
  /** Every key the balancers write starts with this. */
  prefix: string;
  tls: EtcdTlsFiles | null;
  /** etcd user and a file holding its password (read at start). */
  auth: { username: string; passwordFile: string } | null;
}

/** High availability: several balancers coordinated through etcd (README "HA"). */
export interface HaConfig {
  etcd: EtcdConfig;
  /** This balancer's name in etcd; null: `${hostname}-${pid}-${4 random hex}` chosen at start. */
  balancerId: string | null;
  /** TTL of the balancer's etcd lease, ms (whole seconds: etcd leases are in s). A crashed leader hands off after at most this. */
  leaseTtlMs: number;
  /** How often the lead balancer rotates the vouching key ring, ms. */
  keyRotationMs: number;
}

export const DEFAULT_HA_ETCD_PREFIX = '/rebind/';
export const DEFAULT_HA_LEASE_TTL_MS = 2000;
export const DEFAULT_HA_KEY_ROTATION_MS = 86_400_000;
/** Most etcd endpoints accepted. */
export const MAX_HA_ETCD_ENDPOINTS = 16;
const BALANCER_ID = /^[A-Za-z0-9._-]{1,64}$/;
const ETCD_ENDPOINT = /^https?:\/\/[^/\s]+:[0-9]{1,5}\/?$/;
const ETCD_PREFIX = /^[A-Za-z0-9._/-]{1,100}$/;

const HA_NUMBER_RULES: NumberRule<'leaseTtlMs' | 'keyRotationMs'>[] = [
  { key: 'leaseTtlMs', min: 1000, max: 60_000, integer: true, unit: 'ms, whole seconds' },
  { key: 'keyRotationMs', min: 60_000, max: 365 * 86_400_000, integer: true, unit: 'ms' },
];

function parseHa(raw: unknown, errors: string[]): HaConfig | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) {
    errors.push('ha must be an object with etcd: { endpoints }');
    return null;
  }
  const keys = ['etcd', 'balancerId', ...HA_NUMBER_RULES.map((r) => r.key)];
  for (const key of Object.keys(raw)) if (!keys.includes(key)) errors.push(`ha.${key} is not an ha setting (accepted: ${keys.join(', ')})`);
  const out: HaConfig = {
    etcd: { endpoints: [], prefix: DEFAULT_HA_ETCD_PREFIX, tls: null, auth: null },
    balancerId: null,
    leaseTtlMs: DEFAULT_HA_LEASE_TTL_MS,
    keyRotationMs: DEFAULT_HA_KEY_ROTATION_MS,
  };
  if (raw['balancerId'] !== undefined) {
    if (typeof raw['balancerId'] === 'string' && BALANCER_ID.test(raw['balancerId'])) out.balancerId = raw['balancerId'];
    else errors.push(`ha.balancerId is ${JSON.stringify(raw['balancerId'])}; it must be 1-64 characters of letters, digits, . _ -`);
  }
  for (const rule of HA_NUMBER_RULES) {
    if (raw[rule.key] === undefined) continue;
    const v = checkNumber(raw[rule.key], rule, `ha.${rule.key}`, errors);
    if (v === undefined) continue;
    if (rule.key === 'leaseTtlMs' && v % 1000 !== 0) errors.push(`ha.leaseTtlMs is ${v}; it must be whole seconds (a multiple of 1000 ms): etcd leases are granted in seconds`);
    else out[rule.key] = v;
  }
  const etcd = raw['etcd'];
  if (!isObject(etcd)) {
    errors.push(`ha.etcd is ${JSON.stringify(etcd)}; it must be an object with endpoints: ["http(s)://host:port", ...]`);
    return out;
  }
  const etcdKeys = ['endpoints', 'prefix', 'tls', 'auth'];
  for (const key of Object.keys(etcd)) if (!etcdKeys.includes(key)) errors.push(`ha.etcd.${key} is not an etcd setting (accepted: ${etcdKeys.join(', ')})`);
  const endpoints = etcd['endpoints'];
  if (!Array.isArray(endpoints) || endpoints.length < 1 || endpoints.length > MAX_HA_ETCD_ENDPOINTS) {
    errors.push(`ha.etcd.endpoints must be a list of 1-${MAX_HA_ETCD_ENDPOINTS} URLs http(s)://host:port`);
  } else {
    endpoints.forEach((e, i) => {
      if (typeof e === 'string' && ETCD_ENDPOINT.test(e)) out.etcd.endpoints.push(e.replace(/\/$/, ''));
      else errors.push(`ha.etcd.endpoints[${i}] is ${JSON.stringify(e)}; it must be a URL http(s)://host:port`);
    });
    const schemes = new Set(out.etcd.endpoints.map((e) => e.split(':')[0]));
    if (schemes.size > 1) errors.push('ha.etcd.endpoints mix http and https; use one scheme for every endpoint');
  }
  if (etcd['prefix'] !== undefined) {
    const p = etcd['prefix'];
    if (typeof p === 'string' && ETCD_PREFIX.test(p) && p.endsWith('/')) out.etcd.prefix = p;
    else errors.push(`ha.etcd.prefix is ${JSON.stringify(p)}; it must be 1-100 characters of letters, digits, . _ / -, ending with /`);
  }
  const tls = etcd['tls'];
  if (tls !== undefined) {
    if (!isObject(tls)) errors.push('ha.etcd.tls must be an object { caFile, certFile?, keyFile? }');
    else {
      for (const key of Object.keys(tls)) if (!['caFile', 'certFile', 'keyFile'].includes(key)) errors.push(`ha.etcd.tls.${key} is not an etcd TLS setting (accepted: caFile, certFile, keyFile)`);
      const file = (key: string): string | null => {
        const v = tls[key];
        if (v === undefined) return null;
        if (typeof v === 'string' && v.length > 0) return v;
        errors.push(`ha.etcd.tls.${key} is ${JSON.stringify(v)}; it must be a file path`);
        return null;
      };
      const caFile = file('caFile');
      const certFile = file('certFile');
      const keyFile = file('keyFile');
      if (caFile === null && tls['caFile'] === undefined) errors.push('ha.etcd.tls.caFile is missing; it must be the file of the CA that signs etcd\'s certificate');
      if ((certFile === null) !== (keyFile === null)) errors.push('ha.etcd.tls.certFile and ha.etcd.tls.keyFile go together (a client certificate and its key)');
      if (caFile !== null) out.etcd.tls = { caFile, certFile, keyFile };
    }
  }
  const auth = etcd['auth'];
  if (auth !== undefined) {
    if (!isObject(auth) || typeof auth['username'] !== 'string' || auth['username'].length === 0 || auth['username'].length > 128 || typeof auth['passwordFile'] !== 'string' || auth['passwordFile'].length === 0) {
      errors.push('ha.etcd.auth must be { username: 1-128 characters, passwordFile: a file path }');
    } else {
      for (const key of Object.keys(auth)) if (!['username', 'passwordFile'].includes(key)) errors.push(`ha.etcd.auth.${key} is not an etcd auth setting (accepted: username, passwordFile)`);
      out.etcd.auth = { username: auth['username'], passwordFile: auth['passwordFile'] };
    }
  }
  return out;
}

/** How the proxy reaches replicas (the per-request path's upstream connections). */
export interface ProxyConfig {
  /** Ping each upstream connection this often while it carries calls, ms. */
  keepaliveTimeMs: number;
  /** An unanswered ping closes the connection after this long, failing its calls with UNAVAILABLE, ms. */
  keepaliveTimeoutMs: number;
  /** An upstream connection not up (HTTP/2 settings exchanged) within this long fails its calls, ms. */
  connectTimeoutMs: number;
  /** Proxied calls one upstream connection carries before another is opened. */
  maxStreamsPerConnection: number;
  /** Upstream connections per replica; beyond connections x streams calls in flight, RESOURCE_EXHAUSTED. */
  maxConnectionsPerReplica: number;
  /** HTTP/2 flow-control window of one proxied call's response, bytes (what a client that stops reading can park in the balancer). */
  streamWindowBytes: number;
}

export const DEFAULT_PROXY_KEEPALIVE_TIME_MS = 1000;
export const DEFAULT_PROXY_KEEPALIVE_TIMEOUT_MS = 1000;
export const DEFAULT_PROXY_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_PROXY_MAX_STREAMS_PER_CONNECTION = 100;
export const DEFAULT_PROXY_MAX_CONNECTIONS_PER_REPLICA = 4;
/** HTTP/2's default initial window: a stalled call parks at most this much per call. */
export const DEFAULT_PROXY_STREAM_WINDOW_BYTES = 65_535;
/** Shortest accepted control token, characters. */
export const MIN_TOKEN_LENGTH = 16;
/** Most entries in security.adminHosts. */
export const MAX_ADMIN_HOSTS = 64;

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** Whether a listen host (as in adminListen, without brackets) only reaches this machine: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost') return true;
  const family = isIP(h);
  return family === 4 ? LOOPBACK.check(h, 'ipv4') : family === 6 ? LOOPBACK.check(h, 'ipv6') : false;
}

/**
 * Parses one security.adminHosts entry: a host name, an IPv4 address or a
 * bracketed IPv6 address, with an optional :port. Returns an error message
 * (a string) when it is none of those. Host names are lower-cased.
 */
export function parseAdminHost(entry: string): { host: string; port: number | null } | string {
  if (entry.length === 0 || entry.length > 260) return `must be 1-260 characters`;
  const bracketed = entry.startsWith('[');
  const close = entry.indexOf(']');
  const hasPort = bracketed ? close >= 0 && entry.length > close + 1 : entry.includes(':');
  const parsed = parseHostPort(hasPort ? entry : `${entry}:1`);
  if (typeof parsed === 'string') return 'must be a host name, an IPv4 address or a [bracketed] IPv6 address, with an optional :port';
  return { host: parsed.host.toLowerCase(), port: hasPort ? parsed.port : null };
}

/** The whole balancer configuration. */
export interface BalancerConfig {
  /** Data address (host:port) clients target; port 0 picks a free port. */
  listen: string;
  /** Control address (host:port) replicas attach to and the admin API uses. */
  controlListen: string;
  /** Admin HTTP address (host:port): metrics and dashboard; null: no admin HTTP port. */
  adminListen: string | null;
  /** How often the dashboard is sent a fresh snapshot, ms. */
  dashboardPushIntervalMs: number;
  groups: GroupConfig[];
  /** Create a group (with `groupDefaults`) when a replica attaches to an unknown one. */
  autoCreateGroups: boolean;
  /** Defaults for auto-created groups. */
  groupDefaults: Omit<GroupConfig, 'name'>;
  security: SecurityConfig;
  limits: LimitsConfig;
  proxy: ProxyConfig;
  xds: XdsConfig;
  /** Several balancers coordinated through etcd; null: one balancer, no etcd (the default). */
  ha: HaConfig | null;
}

/** No token, no TLS. */
export function builtinSecurity(): SecurityConfig {
  return {
    replicaToken: null,
    replicaTokenFile: null,
    adminToken: null,
    adminTokenFile: null,
    controlTls: null,
    dataTls: null,
    upstreamCaFile: null,
    replicaIdentities: {},
    adminHosts: [],
    adminUnauthenticatedChanges: false,
  };
}

export function builtinLimits(): LimitsConfig {
  return {
    maxControlMessageBytes: DEFAULT_MAX_CONTROL_MESSAGE_BYTES,
    maxReportsPerInterval: DEFAULT_MAX_REPORTS_PER_INTERVAL,
    maxMethodsPerReplica: DEFAULT_MAX_METHODS_PER_REPLICA,
    maxAutoGroups: DEFAULT_MAX_AUTO_GROUPS,
    autoGroupIdleMs: DEFAULT_AUTO_GROUP_IDLE_MS,
    maxPendingBindsPerCaller: DEFAULT_MAX_PENDING_BINDS_PER_CALLER,
    helloTimeoutMs: DEFAULT_HELLO_TIMEOUT_MS,
    maxPendingAttachments: DEFAULT_MAX_PENDING_ATTACHMENTS,
    maxRefusedPerInterval: DEFAULT_MAX_REFUSED_PER_INTERVAL,
    maxDataConnections: DEFAULT_MAX_DATA_CONNECTIONS,
    maxStreamsPerDataConnection: DEFAULT_MAX_STREAMS_PER_DATA_CONNECTION,
    dataIdleTimeoutMs: DEFAULT_DATA_IDLE_TIMEOUT_MS,
    maxProxiedCallsPerCaller: DEFAULT_MAX_PROXIED_CALLS_PER_CALLER,
    maxMemberSeries: DEFAULT_MAX_MEMBER_SERIES,
  };
}

export function builtinProxy(): ProxyConfig {
  return {
    keepaliveTimeMs: DEFAULT_PROXY_KEEPALIVE_TIME_MS,
    keepaliveTimeoutMs: DEFAULT_PROXY_KEEPALIVE_TIMEOUT_MS,
    connectTimeoutMs: DEFAULT_PROXY_CONNECT_TIMEOUT_MS,
    maxStreamsPerConnection: DEFAULT_PROXY_MAX_STREAMS_PER_CONNECTION,
    maxConnectionsPerReplica: DEFAULT_PROXY_MAX_CONNECTIONS_PER_REPLICA,
    streamWindowBytes: DEFAULT_PROXY_STREAM_WINDOW_BYTES,
  };
}

function parseTls(raw: unknown, where: string, errors: string[]): TlsFiles | null {
  if (raw === undefined || raw === null) return null;
  if (!isObject(raw)) {
    errors.push(`${where} must be an object with certFile and keyFile`);
    return null;
  }
  const keys = new Set(['certFile', 'keyFile', 'caFile', 'requireClientCert']);
  for (const key of Object.keys(raw)) if (!keys.has(key)) errors.push(`${where}.${key} is not a TLS setting (accepted: ${[...keys].join(', ')})`);
  const str = (key: string, required: boolean): string | null => {
    const v = raw[key];
    if (v === undefined && !required) return null;
    if (typeof v !== 'string' || v.length === 0) {
      errors.push(`${where}.${key} is ${JSON.stringify(v)}; it must be a file path`);
      return null;
    }
    return v;
  };
  const certFile = str('certFile', true);
  const keyFile = str('keyFile', true);
  const caFile = str('caFile', false);
  let requireClientCert = false;
  if (raw['requireClientCert'] !== undefined) {
    if (typeof raw['requireClientCert'] === 'boolean') requireClientCert = raw['requireClientCert'];
    else errors.push(`${where}.requireClientCert is ${JSON.stringify(raw['requireClientCert'])}; it must be true or false`);
  }
  if (requireClientCert && caFile === null) errors.push(`${where}.requireClientCert needs ${where}.caFile (the CA client certificates must chain to)`);
  return certFile !== null && keyFile !== null ? { certFile, keyFile, caFile, requireClientCert } : null;
}

function parseSecurity(raw: unknown, errors: string[]): SecurityConfig {
  const out = builtinSecurity();
  if (raw === undefined) return out;
  if (!isObject(raw)) {
    errors.push('security must be an object');
    return out;
  }
  const keys = new Set(['replicaToken', 'replicaTokenFile', 'adminToken', 'adminTokenFile', 'controlTls', 'dataTls', 'upstreamCaFile', 'replicaIdentities', 'adminHosts', 'adminUnauthenticatedChanges']);
  for (const key of Object.keys(raw)) {
    if (key === 'token' || key === 'tokenFile') {
      errors.push(
        `security.${key} (one token for every role) was split: security.replicaToken${key === 'tokenFile' ? 'File' : ''} is what replicas present to attach, security.adminToken${key === 'tokenFile' ? 'File' : ''} what the Admin API and the dashboard's changes need; set one or both`,
      );
    } else if (!keys.has(key)) {
      errors.push(`security.${key} is not a security setting (accepted: ${[...keys].join(', ')})`);
    }
  }
  for (const role of ['replica', 'admin'] as const) {
    const tokenKey = `${role}Token` as const;
    const fileKey = `${role}TokenFile` as const;
    const t = raw[tokenKey];
    if (t !== undefined) {
      if (typeof t !== 'string' || t.length < MIN_TOKEN_LENGTH || /\s/.test(t)) errors.push(`security.${tokenKey} must be a string of at least ${MIN_TOKEN_LENGTH} characters without spaces`);
      else out[tokenKey] = t;
    }
    const f = raw[fileKey];
    if (f !== undefined) {
      if (typeof f === 'string' && f.length > 0) out[fileKey] = f;
      else errors.push(`security.${fileKey} is ${JSON.stringify(f)}; it must be a file path`);
    }
    if (out[tokenKey] !== null && out[fileKey] !== null) errors.push(`security.${tokenKey} and security.${fileKey} are both set; give one`);
  }
  if (out.replicaToken !== null && out.replicaToken === out.adminToken) errors.push('security.replicaToken and security.adminToken are the same: give each role its own token');
  const identities = raw['replicaIdentities'];
  if (identities !== undefined) {
    if (!isObject(identities)) {
      errors.push('security.replicaIdentities must be an object: certificate identity -> list of host:port or host');
    } else {
      for (const [identity, list] of Object.entries(identities)) {
        if (!Array.isArray(list) || list.length === 0 || list.some((a) => typeof a !== 'string' || (typeof parseHostPort(a) === 'string' && typeof parseHostPort(`${a}:1`) === 'string'))) {
          errors.push(`security.replicaIdentities[${JSON.stringify(identity)}] must be a non-empty list of host:port or host`);
        } else {
          out.replicaIdentities[identity] = list as string[];
        }
      }
    }
  }
  out.controlTls = parseTls(raw['controlTls'], 'security.controlTls', errors);
  out.dataTls = parseTls(raw['dataTls'], 'security.dataTls', errors);
  if (raw['upstreamCaFile'] !== undefined) {
    if (typeof raw['upstreamCaFile'] === 'string' && raw['upstreamCaFile'].length > 0) out.upstreamCaFile = raw['upstreamCaFile'];
    else errors.push(`security.upstreamCaFile is ${JSON.stringify(raw['upstreamCaFile'])}; it must be a file path`);
  }
  const hosts = raw['adminHosts'];
  if (hosts !== undefined) {
    if (!Array.isArray(hosts) || hosts.length > MAX_ADMIN_HOSTS) {
      errors.push(`security.adminHosts must be an array of at most ${MAX_ADMIN_HOSTS} "host" or "host:port" strings`);
    } else {
      hosts.forEach((entry, i) => {
        const parsed = typeof entry === 'string' ? parseAdminHost(entry) : 'must be a string';
        if (typeof parsed === 'string') errors.push(`security.adminHosts[${i}] is ${JSON.stringify(entry)}; it ${parsed}`);
        else out.adminHosts.push((entry as string).toLowerCase());
      });
    }
  }
  const open = raw['adminUnauthenticatedChanges'];
  if (open !== undefined) {
    if (typeof open === 'boolean') out.adminUnauthenticatedChanges = open;
    else errors.push(`security.adminUnauthenticatedChanges is ${JSON.stringify(open)}; it must be true or false`);
  }
  return out;
}

const LIMIT_RULES: NumberRule<keyof LimitsConfig>[] = [
  { key: 'maxControlMessageBytes', min: 1024, max: 64 * 1024 * 1024, integer: true, unit: 'bytes' },
  { key: 'maxReportsPerInterval', min: 1, max: 1000, integer: true, unit: 'reports' },
  { key: 'maxMethodsPerReplica', min: 1, max: 1_000_000, integer: true, unit: 'methods' },
  { key: 'maxAutoGroups', min: 0, max: 100_000, integer: true, unit: 'groups' },
  { key: 'autoGroupIdleMs', min: 0, max: 86_400_000, integer: true, unit: 'ms' },
  { key: 'maxPendingBindsPerCaller', min: 0, max: 1_000_000, integer: true, unit: 'binds' },
  { key: 'helloTimeoutMs', min: 10, max: 600_000, integer: true, unit: 'ms' },
  { key: 'maxPendingAttachments', min: 1, max: 1_000_000, integer: true, unit: 'streams' },
  { key: 'maxRefusedPerInterval', min: 1, max: 1_000_000, integer: true, unit: 'messages' },
  { key: 'maxDataConnections', min: 1, max: 1_000_000, integer: true, unit: 'connections' },
  { key: 'maxStreamsPerDataConnection', min: 1, max: 100_000, integer: true, unit: 'streams' },
  { key: 'dataIdleTimeoutMs', min: 100, max: 86_400_000, integer: true, unit: 'ms' },
  { key: 'maxProxiedCallsPerCaller', min: 1, max: 1_000_000, integer: true, unit: 'calls' },
  { key: 'maxMemberSeries', min: 0, max: 100_000, integer: true, unit: 'members' },
];

const PROXY_RULES: NumberRule<keyof ProxyConfig>[] = [
  { key: 'keepaliveTimeMs', min: 100, max: 3_600_000, integer: true, unit: 'ms' },
  { key: 'keepaliveTimeoutMs', min: 100, max: 600_000, integer: true, unit: 'ms' },
  { key: 'connectTimeoutMs', min: 100, max: 600_000, integer: true, unit: 'ms' },
  { key: 'maxStreamsPerConnection', min: 1, max: 10_000, integer: true, unit: 'streams' },
  { key: 'maxConnectionsPerReplica', min: 1, max: 100, integer: true, unit: 'connections' },
  // 2^31-1 is HTTP/2's largest window; the connection window is streams x this, so keep it modest.
  { key: 'streamWindowBytes', min: 1024, max: 16 * 1024 * 1024, integer: true, unit: 'bytes' },
];

function parseProxy(raw: unknown, errors: string[]): ProxyConfig {
  const out = builtinProxy();
  if (raw === undefined) return out;
  if (!isObject(raw)) {
    errors.push('proxy must be an object');
    return out;
  }
  for (const key of Object.keys(raw)) {
    if (!PROXY_RULES.some((r) => r.key === key)) errors.push(`proxy.${key} is not a proxy setting (accepted: ${PROXY_RULES.map((r) => r.key).join(', ')})`);
  }
  for (const rule of PROXY_RULES) {
    if (raw[rule.key] === undefined) continue;
    const v = checkNumber(raw[rule.key], rule, `proxy.${rule.key}`, errors);
    if (v !== undefined) out[rule.key] = v;
  }
  return out;
}

function parseLimits(raw: unknown, errors: string[]): LimitsConfig {
  const out = builtinLimits();
  if (raw === undefined) return out;
  if (!isObject(raw)) {
    errors.push('limits must be an object');
    return out;
  }
  for (const key of Object.keys(raw)) {
    if (!LIMIT_RULES.some((r) => r.key === key)) errors.push(`limits.${key} is not a limit (accepted: ${LIMIT_RULES.map((r) => r.key).join(', ')})`);
  }
  for (const rule of LIMIT_RULES) {
    if (raw[rule.key] === undefined) continue;
    const v = checkNumber(raw[rule.key], rule, `limits.${rule.key}`, errors);
    if (v !== undefined) out[rule.key] = v;
  }
  return out;
}

export type ConfigResult<T> = { ok: true; value: T } | { ok: false; errors: string[] };

const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9._\/-]{0,199}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The built-in group defaults. */
export function builtinGroupDefaults(): Omit<GroupConfig, 'name'> {
  const factory = strategyFactory(DEFAULT_STRATEGY)!;
  const params = parseParams(factory, undefined, 'strategy.params');
  return {
    granularity: DEFAULT_GRANULARITY,
    strategy: { name: DEFAULT_STRATEGY, params: params.ok ? params.params : {} },
    metric: DEFAULT_METRIC,
    dampening: DEFAULT_DAMPENING,
    reportIntervalMs: DEFAULT_REPORT_INTERVAL_MS,
    missedReports: DEFAULT_MISSED_REPORTS,
    holdMs: DEFAULT_HOLD_MS,
    settleReports: DEFAULT_SETTLE_REPORTS,
    topClients: DEFAULT_TOP_CLIENTS,
    advisoryExpireMs: DEFAULT_ADVISORY_EXPIRE_MS,
    maxMembers: DEFAULT_MAX_MEMBERS,
    planMinCalls: DEFAULT_PLAN_MIN_CALLS,
    maxBindingSize: DEFAULT_MAX_BINDING_SIZE,
    minShare: DEFAULT_MIN_SHARE,
  };
}

interface NumberRule<K extends string = keyof Omit<GroupConfig, 'name' | 'granularity' | 'strategy' | 'metric'>> {
  key: K;
  min: number;
  max: number;
  integer: boolean;
  unit: string;
  maxExclusive?: boolean;
}

const GROUP_NUMBER_RULES: NumberRule[] = [
  { key: 'dampening', min: 0, max: 1, maxExclusive: true, integer: false, unit: '' },
  { key: 'reportIntervalMs', min: 10, max: 600_000, integer: true, unit: 'ms' },
  { key: 'missedReports', min: 1, max: 1000, integer: true, unit: 'reports' },
  { key: 'holdMs', min: 0, max: 86_400_000, integer: true, unit: 'ms' },
  { key: 'settleReports', min: 0, max: 1000, integer: true, unit: 'reports' },
  { key: 'topClients', min: 1, max: 10_000, integer: true, unit: 'clients' },
  { key: 'advisoryExpireMs', min: 1, max: 86_400_000, integer: true, unit: 'ms' },
  { key: 'maxMembers', min: 1, max: 100_000, integer: true, unit: 'members' },
  { key: 'planMinCalls', min: 0, max: 1_000_000, integer: false, unit: 'calls per member per report interval' },
  { key: 'maxBindingSize', min: 1, max: 16, integer: true, unit: 'members' },
  { key: 'minShare', min: 0.01, max: 0.5, integer: false, unit: 'fraction of a client\'s load' },
];

const GROUP_KEYS = new Set(['name', 'granularity', 'strategy', 'metric', ...GROUP_NUMBER_RULES.map((r) => r.key)]);

function checkNumber(value: unknown, rule: NumberRule<string>, where: string, errors: string[]): number | undefined {
  const tooHigh = typeof value === 'number' && (rule.maxExclusive === true ? value >= rule.max : value > rule.max);
  if (typeof value !== 'number' || !Number.isFinite(value) || value < rule.min || tooHigh || (rule.integer && !Number.isInteger(value))) {
    const kind = rule.integer ? 'an integer' : 'a number';
    const high = rule.maxExclusive ? `< ${rule.max}` : `<= ${rule.max}`;
    errors.push(`${where} is ${JSON.stringify(value)}; it must be ${kind} >= ${rule.min} and ${high}${rule.unit ? ` (${rule.unit})` : ''}`);
    return undefined;
  }
  return value;
}

/**
 * Validates one group's settings over `base` (defaults). `where` names the
 * location for error messages, e.g. "groups[2]".
 */
export function parseGroupSettings(
  raw: Record<string, unknown>,
  base: Omit<GroupConfig, 'name'>,
  where: string,
  errors: string[],
  allowName: boolean,
): Omit<GroupConfig, 'name'> {
  const out: Omit<GroupConfig, 'name'> = { ...base, strategy: { ...base.strategy, params: { ...base.strategy.params } } };
  for (const key of Object.keys(raw)) {
    if (!GROUP_KEYS.has(key) || (key === 'name' && !allowName)) {
      errors.push(`${where}.${key} is not a group setting (accepted: ${[...GROUP_KEYS].filter((k) => allowName || k !== 'name').join(', ')})`);
    }
  }
  if (raw['granularity'] !== undefined) {
    if (typeof raw['granularity'] === 'string' && (GRANULARITIES as readonly string[]).includes(raw['granularity'])) {
      out.granularity = raw['granularity'] as Granularity;
    } else {
      errors.push(`${where}.granularity is ${JSON.stringify(raw['granularity'])}; it must be one of ${GRANULARITIES.join(', ')}`);
    }
  }
  if (raw['metric'] !== undefined) {
    if (typeof raw['metric'] === 'string' && (METRICS as readonly string[]).includes(raw['metric'])) {
      out.metric = raw['metric'] as Metric;
    } else {
      errors.push(`${where}.metric is ${JSON.stringify(raw['metric'])}; it must be one of ${METRICS.join(', ')}`);
    }
  }
  if (raw['strategy'] !== undefined) {
    const s = raw['strategy'];
    const name = typeof s === 'string' ? s : isObject(s) ? s['name'] : undefined;
    const params = isObject(s) ? s['params'] : undefined;
    if (isObject(s)) {
      for (const key of Object.keys(s)) {
        if (key !== 'name' && key !== 'params') errors.push(`${where}.strategy.${key} is not a strategy setting (accepted: name, params)`);
      }
    }
    const factory = typeof name === 'string' ? strategyFactory(name) : undefined;
    if (factory === undefined) {
      errors.push(`${where}.strategy.name is ${JSON.stringify(name)}; it must be one of ${strategyNames().join(', ')}`);
    } else {
      const parsed = parseParams(factory, params as Record<string, unknown> | undefined, `${where}.strategy.params`);
      if (parsed.ok) out.strategy = { name: factory.name, params: parsed.params };
      else errors.push(...parsed.errors);
    }
  }
  for (const rule of GROUP_NUMBER_RULES) {
    if (raw[rule.key] === undefined) continue;
    const value = checkNumber(raw[rule.key], rule, `${where}.${rule.key}`, errors);
    if (value !== undefined) out[rule.key] = value;
  }
  return out;
}

function checkAddress(value: unknown, where: string, errors: string[], fallback: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string') {
    errors.push(`${where} is ${JSON.stringify(value)}; it must be a host:port string`);
    return fallback;
  }
  const parsed = parseListenAddress(value);
  if (typeof parsed === 'string') {
    errors.push(`${where}: ${parsed}`);
    return fallback;
  }
  return value;
}

const TOP_KEYS = new Set(['listen', 'controlListen', 'adminListen', 'dashboardPushIntervalMs', 'groups', 'autoCreateGroups', 'groupDefaults', 'security', 'limits', 'proxy', 'xds', 'ha']);

/** Validates a whole configuration object (already parsed from JSON/YAML). */
export function parseBalancerConfig(raw: unknown): ConfigResult<BalancerConfig> {
  const errors: string[] = [];
  if (!isObject(raw)) return { ok: false, errors: ['configuration must be an object'] };
  for (const key of Object.keys(raw)) {
    if (!TOP_KEYS.has(key)) errors.push(`${key} is not a configuration setting (accepted: ${[...TOP_KEYS].join(', ')})`);
  }
  const listen = checkAddress(raw['listen'], 'listen', errors, DEFAULT_LISTEN);
  const controlListen = checkAddress(raw['controlListen'], 'controlListen', errors, DEFAULT_CONTROL_LISTEN);
  const adminListen = raw['adminListen'] === null ? null : checkAddress(raw['adminListen'], 'adminListen', errors, DEFAULT_ADMIN_LISTEN);
  const dashboardPushIntervalMs =
    raw['dashboardPushIntervalMs'] === undefined
      ? DEFAULT_DASHBOARD_PUSH_INTERVAL_MS
      : (checkNumber(raw['dashboardPushIntervalMs'], { key: 'dashboardPushIntervalMs', min: 100, max: 60_000, integer: true, unit: 'ms' }, 'dashboardPushIntervalMs', errors) ??
        DEFAULT_DASHBOARD_PUSH_INTERVAL_MS);
  let autoCreateGroups = false;
  if (raw['autoCreateGroups'] !== undefined) {
    if (typeof raw['autoCreateGroups'] === 'boolean') autoCreateGroups = raw['autoCreateGroups'];
    else errors.push(`autoCreateGroups is ${JSON.stringify(raw['autoCreateGroups'])}; it must be true or false`);
  }
  let groupDefaults = builtinGroupDefaults();
  if (raw['groupDefaults'] !== undefined) {
    if (isObject(raw['groupDefaults'])) groupDefaults = parseGroupSettings(raw['groupDefaults'], groupDefaults, 'groupDefaults', errors, false);
    else errors.push('groupDefaults must be an object');
  }
  const groups: GroupConfig[] = [];
  const rawGroups = raw['groups'] ?? [];
  if (!Array.isArray(rawGroups)) {
    errors.push('groups must be an array of group objects');
  } else {
    const seen = new Set<string>();
    rawGroups.forEach((g, index) => {
      const where = `groups[${index}]`;
      if (!isObject(g)) {
        errors.push(`${where} must be an object`);
        return;
      }
      const name = g['name'];
      if (typeof name !== 'string' || !GROUP_NAME.test(name)) {
        errors.push(`${where}.name is ${JSON.stringify(name)}; it must be 1-200 characters of letters, digits, . _ / -, starting with a letter or digit`);
        return;
      }
      if (seen.has(name)) errors.push(`${where}.name "${name}" is listed twice`);
      seen.add(name);
      groups.push({ name, ...parseGroupSettings(g, groupDefaults, where, errors, true) });
    });
  }
  const security = parseSecurity(raw['security'], errors);
  const adminOptInError = checkAdminOptIn(security, adminListen);
  if (adminOptInError !== null) errors.push(adminOptInError);
  const limits = parseLimits(raw['limits'], errors);
  const proxy = parseProxy(raw['proxy'], errors);
  const xds = parseXds(raw['xds'], errors);
  const ha = parseHa(raw['ha'], errors);
  if (errors.length > 0) return { ok: false, errors };
  const value: BalancerConfig = { listen, controlListen, adminListen, dashboardPushIntervalMs, groups, autoCreateGroups, groupDefaults, security, limits, proxy, xds, ha };
  VALIDATED.add(value);
  return { ok: true, value };
}

/** Configurations that came out of parseBalancerConfig (anything else is parsed again). */
const VALIDATED = new WeakSet<object>();

/** Whether `config` is a configuration parseBalancerConfig returned (not a raw object of the same shape). */
export function isValidatedConfig(config: object): config is BalancerConfig {
  return VALIDATED.has(config);
}

/**
 * The error for security.adminUnauthenticatedChanges on an admin port that
 * is not loopback-only, or null when the combination is fine. Checked at
 * validation and again when the admin port starts (the CLI can override
 * adminListen after validation).
 */
export function checkAdminOptIn(security: Pick<SecurityConfig, 'adminUnauthenticatedChanges'>, adminListen: string | null): string | null {
  if (!security.adminUnauthenticatedChanges || adminListen === null) return null;
  const parsed = parseListenAddress(adminListen);
  if (typeof parsed !== 'string' && isLoopbackHost(parsed.host)) return null;
  return `security.adminUnauthenticatedChanges is true but adminListen ${JSON.stringify(adminListen)} is not a loopback address (127.0.0.0/8, [::1], localhost): anyone who can reach the admin port could change strategies; set security.adminToken instead, or listen on loopback`;
}

/** Serializes a configuration back to a plain object (round-trips through parse). */
export function serializeBalancerConfig(config: BalancerConfig): Record<string, unknown> {
  return {
    listen: config.listen,
    controlListen: config.controlListen,
    adminListen: config.adminListen,
    dashboardPushIntervalMs: config.dashboardPushIntervalMs,
    autoCreateGroups: config.autoCreateGroups,
    groupDefaults: structuredClone(config.groupDefaults),
    groups: config.groups.map((g) => structuredClone(g)),
    security: {
      ...(config.security.replicaToken !== null ? { replicaToken: config.security.replicaToken } : {}),
      ...(config.security.replicaTokenFile !== null ? { replicaTokenFile: config.security.replicaTokenFile } : {}),
      ...(config.security.adminToken !== null ? { adminToken: config.security.adminToken } : {}),
      ...(config.security.adminTokenFile !== null ? { adminTokenFile: config.security.adminTokenFile } : {}),
      ...(Object.keys(config.security.replicaIdentities).length > 0 ? { replicaIdentities: structuredClone(config.security.replicaIdentities) } : {}),
      ...(config.security.controlTls !== null ? { controlTls: tlsToJson(config.security.controlTls) } : {}),
      ...(config.security.dataTls !== null ? { dataTls: tlsToJson(config.security.dataTls) } : {}),
      ...(config.security.upstreamCaFile !== null ? { upstreamCaFile: config.security.upstreamCaFile } : {}),
      ...(config.security.adminHosts.length > 0 ? { adminHosts: [...config.security.adminHosts] } : {}),
      ...(config.security.adminUnauthenticatedChanges ? { adminUnauthenticatedChanges: true } : {}),
    },
    limits: { ...config.limits },
    proxy: { ...config.proxy },
    xds: { ...config.xds },
    ...(config.ha !== null ? { ha: haToJson(config.ha) } : {}),
  };
}

function haToJson(ha: HaConfig): Record<string, unknown> {
  const { tls, auth } = ha.etcd;
  return {
    etcd: {
      endpoints: [...ha.etcd.endpoints],
      prefix: ha.etcd.prefix,
      ...(tls !== null ? { tls: { caFile: tls.caFile, ...(tls.certFile !== null ? { certFile: tls.certFile } : {}), ...(tls.keyFile !== null ? { keyFile: tls.keyFile } : {}) } } : {}),
      ...(auth !== null ? { auth: { ...auth } } : {}),
    },
    ...(ha.balancerId !== null ? { balancerId: ha.balancerId } : {}),
    leaseTtlMs: ha.leaseTtlMs,
    keyRotationMs: ha.keyRotationMs,
  };
}

function tlsToJson(t: TlsFiles): Record<string, unknown> {
  return { certFile: t.certFile, keyFile: t.keyFile, ...(t.caFile !== null ? { caFile: t.caFile } : {}), requireClientCert: t.requireClientCert };
}

/** Whether a group name is acceptable. */
export function isValidGroupName(name: string): boolean {
  return GROUP_NAME.test(name);
}
