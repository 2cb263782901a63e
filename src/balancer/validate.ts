/**
 * Validation of every control message a replica sends. Each check returns
 * null (accepted) or a {@link Refusal}: the gRPC status code that fits and a
 * message saying what was wrong. Nothing here throws on hostile input.
 */
import { status as Status } from '@grpc/grpc-js';
import { parseHostPort } from '../common/address';
import { CLIENT_ID_PATTERN, PROTOCOL_VERSION } from '../common/wire';
import type { Hello__Output } from '../generated/rebind/v1/Hello';
import type { LoadReport__Output } from '../generated/rebind/v1/LoadReport';
import { DEFAULT_MAX_METHODS_PER_REPLICA, isValidGroupName } from './config';

export interface Refusal {
  code: Status;
  message: string;
  /** Counter reason (rebind_refused_inputs_total) when it is more specific than the caller's. */
  reason?: string;
}

/** Limits on control messages (see README "Configuration"). */
export interface ControlLimits {
  maxMethods: number;
  maxPathLength: number;
  /** Largest load value accepted in any metric. */
  maxLoad: number;
  maxInFlight: number;
  maxTopClients: number;
}

export const DEFAULT_CONTROL_LIMITS: ControlLimits = {
  maxMethods: DEFAULT_MAX_METHODS_PER_REPLICA,
  maxPathLength: 1024,
  maxLoad: 1e9,
  maxInFlight: 10_000_000,
  maxTopClients: 10_000,
};

const METHOD_PATH = /^\/[A-Za-z0-9_.$-]+\/[A-Za-z0-9_.$-]+$/;
const REPLICA_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;
const CALL_KINDS = new Set(['UNARY', 'SERVER_STREAMING', 'CLIENT_STREAMING', 'BIDI_STREAMING']);

/** Whether a result is a refusal (rather than the value asked for). */
export function isRefusal(value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof (value as Refusal).code === 'number' && typeof (value as Refusal).message === 'string';
}

const refuse = (code: Status, message: string): Refusal => ({ code, message });

/** Checks a Hello (the first message of an attachment). */
export function validateHello(hello: Hello__Output, limits: ControlLimits = DEFAULT_CONTROL_LIMITS): Refusal | null {
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    return refuse(Status.FAILED_PRECONDITION, `hello.protocol_version is ${hello.protocolVersion}; this balancer speaks ${PROTOCOL_VERSION}`);
  }
  if (!isValidGroupName(hello.group)) {
    return refuse(Status.INVALID_ARGUMENT, `hello.group ${JSON.stringify(hello.group.slice(0, 100))} is not a valid group name`);
  }
  const address = parseHostPort(hello.address);
  if (typeof address === 'string') return refuse(Status.INVALID_ARGUMENT, `hello.address: ${address}`);
  if (hello.replicaId !== '' && !REPLICA_ID.test(hello.replicaId)) {
    return refuse(Status.INVALID_ARGUMENT, 'hello.replica_id must be 1-128 characters of letters, digits and _ . : @ -');
  }
  if (hello.methods.length === 0) return refuse(Status.INVALID_ARGUMENT, 'hello.methods is empty: a replica must serve at least one method');
  if (hello.methods.length > limits.maxMethods) {
    return refuse(Status.RESOURCE_EXHAUSTED, `hello.methods lists ${hello.methods.length} methods (limit ${limits.maxMethods})`);
  }
  const seen = new Set<string>();
  for (const [i, m] of hello.methods.entries()) {
    if (m.path.length > limits.maxPathLength || !METHOD_PATH.test(m.path)) {
      return refuse(Status.INVALID_ARGUMENT, `hello.methods[${i}].path ${JSON.stringify(m.path.slice(0, 100))} is not of the form /package.Service/Method`);
    }
    if (!CALL_KINDS.has(m.kind)) {
      return refuse(Status.INVALID_ARGUMENT, `hello.methods[${i}].kind is ${m.kind}; it must be UNARY, SERVER_STREAMING, CLIENT_STREAMING or BIDI_STREAMING`);
    }
    if (seen.has(m.path)) return refuse(Status.INVALID_ARGUMENT, `hello.methods lists ${m.path} twice`);
    seen.add(m.path);
  }
  return null;
}

function badNumber(value: number, max: number): boolean {
  return typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > max;
}

/** Up to this many top clients, duplicates are found by a pairwise scan (no allocation); beyond, with a set. */
const SMALL_TOP_CLIENTS = 16;

function listedBefore(top: readonly { clientId: string }[], i: number): boolean {
  const id = top[i]!.clientId;
  for (let j = 0; j < i; j++) if (top[j]!.clientId === id) return true;
  return false;
}

function badField(name: string, value: number, max: number): Refusal {
  return refuse(Status.INVALID_ARGUMENT, `report.${name} is ${value}; it must be a finite number in 0..${max}`);
}

/** Checks a load report against the previous sequence number of its attachment. */
export function validateReport(report: LoadReport__Output, lastSeq: number, limits: ControlLimits = DEFAULT_CONTROL_LIMITS): Refusal | null {
  if (!(report.seq > lastSeq)) {
    return refuse(Status.FAILED_PRECONDITION, `report seq ${report.seq} is not after the previous report's seq ${lastSeq} (out of order or replayed)`);
  }
  if (report.intervalMs < 1 || report.intervalMs > 3_600_000) {
    return refuse(Status.INVALID_ARGUMENT, `report.interval_ms is ${report.intervalMs}; it must be 1..3600000`);
  }
  // Checked one by one in this order (the first failing field is the one named), without
  // allocating: this runs for every report of every replica.
  if (badNumber(report.callsPerS, limits.maxLoad)) return badField('calls_per_s', report.callsPerS, limits.maxLoad);
  if (badNumber(report.latencyMs, 86_400_000)) return badField('latency_ms', report.latencyMs, 86_400_000);
  if (badNumber(report.eventLoopUtilization, 1.001)) return badField('event_loop_utilization', report.eventLoopUtilization, 1.001);
  if (badNumber(report.cpuCores, 4096)) return badField('cpu_cores', report.cpuCores, 4096);
  if (badNumber(report.custom, limits.maxLoad)) return badField('custom', report.custom, limits.maxLoad);
  if (badNumber(report.otherCallsPerS, limits.maxLoad)) return badField('other_calls_per_s', report.otherCallsPerS, limits.maxLoad);
  if (badNumber(report.inFlight, limits.maxInFlight)) return badField('in_flight', report.inFlight, limits.maxInFlight);
  const top = report.topClients;
  if (top.length > limits.maxTopClients) {
    return refuse(Status.RESOURCE_EXHAUSTED, `report.top_clients lists ${top.length} clients (limit ${limits.maxTopClients})`);
  }
  // Duplicates: a pairwise scan for the usual few top clients, a set beyond.
  const seen = top.length > SMALL_TOP_CLIENTS ? new Set<string>() : null;
  for (let i = 0; i < top.length; i++) {
    const c = top[i]!;
    if (!CLIENT_ID_PATTERN.test(c.clientId)) {
      return refuse(Status.INVALID_ARGUMENT, `report.top_clients[${i}].client_id is not 8-64 characters of base64url`);
    }
    if (seen !== null ? seen.has(c.clientId) : listedBefore(top, i)) return refuse(Status.INVALID_ARGUMENT, `report.top_clients lists client ${c.clientId} twice`);
    seen?.add(c.clientId);
    if (badNumber(c.callsPerS, limits.maxLoad)) {
      return refuse(Status.INVALID_ARGUMENT, `report.top_clients[${i}].calls_per_s is ${c.callsPerS}; it must be a finite number in 0..${limits.maxLoad}`);
    }
  }
  return null;
}
