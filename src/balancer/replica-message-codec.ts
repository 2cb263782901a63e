/**
 * A hand-written decoder for rebind.v1.ReplicaMessage (the Control stream's
 * request), registered as the Attach method's requestDeserialize in place of
 * proto-loader's (protobufjs decode, then toObject: two object trees and a
 * Reader per message). With 10,000 replicas reporting every second the
 * balancer decodes 10,000 LoadReports a second; this decoder builds the
 * output object directly from the bytes.
 *
 * It produces exactly what proto-loader does with the project's options
 * (PROTO_LOADER_OPTIONS: defaults, oneofs, longs as Number, enums as String)
 * and reads bytes the way protobufjs 7 does, quirks included (so that a
 * replica that works today works the same): unknown fields are skipped
 * (groups too, nested at most 100 deep), a field seen twice keeps its last
 * value, a message field seen twice is replaced (not merged), a string
 * running past its message's end is cut at the end, over-long varints are
 * read as protobufjs reads them. One difference, on purpose: a known field
 * with the wrong wire type (which no protobuf encoder produces) is refused
 * with a {@link ReplicaMessageDecodeError} naming the field, where protobufjs
 * would read its bytes as if the type were right. None of these messages
 * has a repeated scalar field, so packed encoding does not arise.
 * test/unit/replica-message-codec.test.ts compares it with proto-loader on
 * random messages and random, mutated and truncated bytes.
 *
 * Not re-entrant (one module-level cursor): grpc-js calls deserializers
 * synchronously, one at a time.
 */
import type { ClientLoad__Output } from '../generated/rebind/v1/ClientLoad';
import type { Detach__Output } from '../generated/rebind/v1/Detach';
import type { Hello__Output } from '../generated/rebind/v1/Hello';
import type { LoadReport__Output } from '../generated/rebind/v1/LoadReport';
import type { Method__Output } from '../generated/rebind/v1/Method';
import type { ReplicaMessage__Output } from '../generated/rebind/v1/ReplicaMessage';

/** protobufjs's recursion limit (util.recursionLimit), for skipped groups. */
const RECURSION_LIMIT = 100;
const TWO_POW_32 = 4294967296;
/** rebind.v1.CallKind by number (enums as String; an unknown number stays a number, as protobufjs leaves it). */
const CALL_KINDS: readonly string[] = ['CALL_KIND_UNSPECIFIED', 'UNARY', 'SERVER_STREAMING', 'CLIENT_STREAMING', 'BIDI_STREAMING'];

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH = 2;
const WIRE_NAMES = ['varint', 'fixed64', 'length-delimited', 'start-group', 'end-group', 'fixed32', '6', '7'];

/** A ReplicaMessage whose bytes are not a valid encoding (grpc-js ends the call with INTERNAL, as for any deserialize error). */
export class ReplicaMessageDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReplicaMessageDecodeError';
  }
}

const EMPTY = Buffer.alloc(0);
let buf: Buffer = EMPTY;
let pos = 0;

function outOfRange(end: number, length = 1): never {
  // protobufjs's wording ("index out of range: pos + length > len").
  throw new RangeError(`index out of range: ${pos} + ${length} > ${end}`);
}

function wrongWireType(message: string, field: number, name: string, got: number, expected: number): never {
  throw new ReplicaMessageDecodeError(
    `rebind.v1.${message} field ${field} (${name}) has wire type ${WIRE_NAMES[got]} (${got}); expected ${WIRE_NAMES[expected]} (${expected})`,
  );
}

/** protobufjs Reader#uint32 (a varint's low 32 bits; bytes 6-10 of an over-long varint are skipped unread). */
function uint32(end: number): number {
  if (end - pos < 5) {
    if (pos >= end) outOfRange(end);
    if (buf[pos]! >= 128) return uint32NearEnd(end);
  }
  let b = buf[pos++]!;
  let value = b & 127;
  if (b < 128) return value;
  b = buf[pos++]!;
  value = (value | ((b & 127) << 7)) >>> 0;
  if (b < 128) return value;
  b = buf[pos++]!;
  value = (value | ((b & 127) << 14)) >>> 0;
  if (b < 128) return value;
  b = buf[pos++]!;
  value = (value | ((b & 127) << 21)) >>> 0;
  if (b < 128) return value;
  b = buf[pos++]!;
  value = (value | ((b & 15) << 28)) >>> 0;
  if (b < 128) return value;
  if ((pos += 5) > end) {
    pos = end;
    outOfRange(end, 10);
  }
  return value;
}

function uint32NearEnd(end: number): number {
  let value = 0;
  for (let i = 0; i < 4; ++i) {
    if (pos >= end) outOfRange(end);
    const b = buf[pos++]!;
    value = (value | ((b & 127) << (i * 7))) >>> 0;
    if (b < 128) return value;
  }
  outOfRange(end);
}

/** protobufjs Reader#uint64 then LongBits#toNumber(true) (longs: Number). */
function uint64(end: number): number {
  let lo = 0;
  let hi = 0;
  let i = 0;
  if (end - pos > 4) {
    for (; i < 4; ++i) {
      lo = (lo | ((buf[pos]! & 127) << (i * 7))) >>> 0;
      if (buf[pos++]! < 128) return lo + hi * TWO_POW_32;
    }
    lo = (lo | ((buf[pos]! & 127) << 28)) >>> 0;
    hi = (hi | ((buf[pos]! & 127) >> 4)) >>> 0;
    if (buf[pos++]! < 128) return lo + hi * TWO_POW_32;
    i = 0;
  } else {
    for (; i < 3; ++i) {
      if (pos >= end) outOfRange(end);
      lo = (lo | ((buf[pos]! & 127) << (i * 7))) >>> 0;
      if (buf[pos++]! < 128) return lo + hi * TWO_POW_32;
    }
    // As protobufjs: the 4th byte is taken whatever it is (past the end, the message's length check refuses it).
    lo = (lo | (((buf[pos++] as number | undefined) ?? 0) & 127) << (i * 7)) >>> 0;
    return lo + hi * TWO_POW_32;
  }
  if (end - pos > 4) {
    for (; i < 5; ++i) {
      hi = (hi | ((buf[pos]! & 127) << (i * 7 + 3))) >>> 0;
      if (buf[pos++]! < 128) return lo + hi * TWO_POW_32;
    }
  } else {
    for (; i < 5; ++i) {
      if (pos >= end) outOfRange(end);
      hi = (hi | ((buf[pos]! & 127) << (i * 7 + 3))) >>> 0;
      if (buf[pos++]! < 128) return lo + hi * TWO_POW_32;
    }
  }
  throw new ReplicaMessageDecodeError('invalid varint encoding');
}

function double(end: number): number {
  if (pos + 8 > end) outOfRange(end, 4);
  const value = buf.readDoubleLE(pos);
  pos += 8;
  return value;
}

interface Utf8Sliceable {
  utf8Slice(start: number, end: number): string;
}

/** protobufjs BufferReader#string: a length running past the end is cut at the end. */
function string(end: number): string {
  const length = uint32(end);
  const start = pos;
  pos = Math.min(pos + length, end);
  // Buffer#utf8Slice (what toString('utf8') calls after its argument checks), as protobufjs reads strings.
  return (buf as unknown as Utf8Sliceable).utf8Slice(start, pos);
}

function skip(end: number, length: number): void {
  if (pos + length > end) outOfRange(end, length);
  pos += length;
}

function skipVarint(end: number): void {
  do {
    if (pos >= end) outOfRange(end);
  } while (buf[pos++]! & 128);
}

/** protobufjs Reader#skipType. */
function skipType(end: number, wireType: number, depth: number): void {
  if (depth > RECURSION_LIMIT) throw new ReplicaMessageDecodeError('maximum nesting depth exceeded');
  switch (wireType) {
    case 0:
      return skipVarint(end);
    case 1:
      return skip(end, 8);
    case 2:
      return skip(end, uint32(end));
    case 3:
      for (;;) {
        const inner = uint32(end) & 7;
        if (inner === 4) return;
        skipType(end, inner, depth + 1);
      }
    case 5:
      return skip(end, 4);
    default:
      throw new ReplicaMessageDecodeError(`invalid wire type ${wireType} at offset ${pos}`);
  }
}

/** The end of a nested message whose length comes next (protobufjs: "index out of range" past the enclosing end). */
function nestedEnd(end: number): number {
  const length = uint32(end);
  const nested = pos + length;
  if (nested > end) outOfRange(end, length);
  return nested;
}

function checkEnd(end: number): void {
  if (pos !== end) outOfRange(end, 0);
}

function newClientLoad(): ClientLoad__Output {
  return { clientId: '', callsPerS: 0, sets: false };
}

/** Decodes a ClientLoad into `out` (reset first: a reused object ends as a fresh one would). */
function decodeClientLoad(end: number, out: ClientLoad__Output): ClientLoad__Output {
  out.clientId = '';
  out.callsPerS = 0;
  out.sets = false;
  while (pos < end) {
    const tag = uint32(end);
    const wire = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wire !== WIRE_LENGTH) wrongWireType('ClientLoad', 1, 'client_id', wire, WIRE_LENGTH);
        out.clientId = string(end);
        break;
      case 2:
        if (wire !== WIRE_FIXED64) wrongWireType('ClientLoad', 2, 'calls_per_s', wire, WIRE_FIXED64);
        out.callsPerS = double(end);
        break;
      case 3:
        if (wire !== WIRE_VARINT) wrongWireType('ClientLoad', 3, 'sets', wire, WIRE_VARINT);
        out.sets = uint32(end) !== 0;
        break;
      default:
        skipType(end, wire, 2);
    }
  }
  checkEnd(end);
  return out;
}

const LOAD_REPORT_FIELDS: Record<number, [string, number]> = {
  1: ['seq', WIRE_VARINT],
  2: ['interval_ms', WIRE_VARINT],
  3: ['calls_per_s', WIRE_FIXED64],
  4: ['in_flight', WIRE_VARINT],
  5: ['latency_ms', WIRE_FIXED64],
  6: ['event_loop_utilization', WIRE_FIXED64],
  7: ['cpu_cores', WIRE_FIXED64],
  8: ['custom', WIRE_FIXED64],
  9: ['has_custom', WIRE_VARINT],
  10: ['top_clients', WIRE_LENGTH],
  11: ['other_calls_per_s', WIRE_FIXED64],
  12: ['forwards', WIRE_VARINT],
  13: ['draining', WIRE_VARINT],
  14: ['client_count', WIRE_VARINT],
};

function newLoadReport(): LoadReport__Output {
  // Keys in proto-loader's order (toObject: repeated first, then the defaults).
  return {
    topClients: [],
    seq: 0,
    intervalMs: 0,
    callsPerS: 0,
    inFlight: 0,
    latencyMs: 0,
    eventLoopUtilization: 0,
    cpuCores: 0,
    custom: 0,
    hasCustom: false,
    otherCallsPerS: 0,
    forwards: 0,
    draining: false,
    clientCount: 0,
  };
}

/**
 * The pooled ClientLoad objects of the scratch being decoded into (null:
 * decoding fresh objects). Module-level like the cursor: set for the
 * duration of one decodeReplicaMessageInto.
 */
let clientPool: ClientLoad__Output[] | null = null;

/** Decodes a LoadReport into `out` (reset first: a reused object ends as a fresh one would). */
function decodeLoadReport(end: number, out: LoadReport__Output): LoadReport__Output {
  // A report field seen twice is replaced, not merged: every field back to its default.
  out.topClients.length = 0;
  out.seq = 0;
  out.intervalMs = 0;
  out.callsPerS = 0;
  out.inFlight = 0;
  out.latencyMs = 0;
  out.eventLoopUtilization = 0;
  out.cpuCores = 0;
  out.custom = 0;
  out.hasCustom = false;
  out.otherCallsPerS = 0;
  out.forwards = 0;
  out.draining = false;
  out.clientCount = 0;
  while (pos < end) {
    const tag = uint32(end);
    const field = tag >>> 3;
    const wire = tag & 7;
    const known = LOAD_REPORT_FIELDS[field];
    if (known === undefined) {
      skipType(end, wire, 1);
      continue;
    }
    if (wire !== known[1]) wrongWireType('LoadReport', field, known[0], wire, known[1]);
    switch (field) {
      case 1:
        out.seq = uint64(end);
        break;
      case 2:
        out.intervalMs = uint32(end);
        break;
      case 3:
        out.callsPerS = double(end);
        break;
      case 4:
        out.inFlight = uint32(end);
        break;
      case 5:
        out.latencyMs = double(end);
        break;
      case 6:
        out.eventLoopUtilization = double(end);
        break;
      case 7:
        out.cpuCores = double(end);
        break;
      case 8:
        out.custom = double(end);
        break;
      case 9:
        out.hasCustom = uint32(end) !== 0;
        break;
      case 10:
        out.topClients.push(decodeClientLoad(nestedEnd(end), nextClientLoad(out.topClients.length)));
        break;
      case 11:
        out.otherCallsPerS = double(end);
        break;
      case 12:
        out.forwards = uint32(end);
        break;
      case 13:
        out.draining = uint32(end) !== 0;
        break;
      case 14:
        out.clientCount = uint32(end);
        break;
    }
  }
  checkEnd(end);
  return out;
}

function decodeMethod(end: number): Method__Output {
  const out: Method__Output = { path: '', kind: 'CALL_KIND_UNSPECIFIED' };
  while (pos < end) {
    const tag = uint32(end);
    const wire = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wire !== WIRE_LENGTH) wrongWireType('Method', 1, 'path', wire, WIRE_LENGTH);
        out.path = string(end);
        break;
      case 2: {
        if (wire !== WIRE_VARINT) wrongWireType('Method', 2, 'kind', wire, WIRE_VARINT);
        const kind = uint32(end) | 0;
        out.kind = (CALL_KINDS[kind] ?? kind) as Method__Output['kind'];
        break;
      }
      default:
        skipType(end, wire, 2);
    }
  }
  checkEnd(end);
  return out;
}

function decodeHello(end: number): Hello__Output {
  const out: Hello__Output = { methods: [], protocolVersion: 0, group: '', address: '', replicaId: '', resumeSecret: '' };
  while (pos < end) {
    const tag = uint32(end);
    const wire = tag & 7;
    switch (tag >>> 3) {
      case 1:
        if (wire !== WIRE_VARINT) wrongWireType('Hello', 1, 'protocol_version', wire, WIRE_VARINT);
        out.protocolVersion = uint32(end);
        break;
      case 2:
        if (wire !== WIRE_LENGTH) wrongWireType('Hello', 2, 'group', wire, WIRE_LENGTH);
        out.group = string(end);
        break;
      case 3:
        if (wire !== WIRE_LENGTH) wrongWireType('Hello', 3, 'address', wire, WIRE_LENGTH);
        out.address = string(end);
        break;
      case 4:
        if (wire !== WIRE_LENGTH) wrongWireType('Hello', 4, 'methods', wire, WIRE_LENGTH);
        out.methods.push(decodeMethod(nestedEnd(end)));
        break;
      case 5:
        if (wire !== WIRE_LENGTH) wrongWireType('Hello', 5, 'replica_id', wire, WIRE_LENGTH);
        out.replicaId = string(end);
        break;
      case 6:
        if (wire !== WIRE_LENGTH) wrongWireType('Hello', 6, 'resume_secret', wire, WIRE_LENGTH);
        out.resumeSecret = string(end);
        break;
      default:
        skipType(end, wire, 1);
    }
  }
  checkEnd(end);
  return out;
}

function decodeDetach(end: number): Detach__Output {
  const out: Detach__Output = { reason: '' };
  while (pos < end) {
    const tag = uint32(end);
    const wire = tag & 7;
    if (tag >>> 3 === 1) {
      if (wire !== WIRE_LENGTH) wrongWireType('Detach', 1, 'reason', wire, WIRE_LENGTH);
      out.reason = string(end);
    } else {
      skipType(end, wire, 1);
    }
  }
  checkEnd(end);
  return out;
}

/**
 * Decodes one ReplicaMessage as proto-loader would (see the module comment
 * for the one difference: wrong wire types are refused). Throws on bytes
 * that are not a valid encoding.
 */
export function decodeReplicaMessage(bytes: Buffer): ReplicaMessage__Output {
  return decode(bytes, null);
}

/**
 * Top clients whose ClientLoad objects a scratch keeps for reuse; a report
 * listing more gets fresh objects beyond these (collected with the message),
 * and a scratch whose list grew past it gets a new list at its next decode:
 * what a replica's one large report leaves in the scratch is bounded.
 */
export const MAX_SCRATCH_TOP_CLIENTS = 64;

/**
 * Reused objects for {@link decodeReplicaMessageInto}: one LoadReport, its
 * pooled ClientLoads, and the message wrapping it.
 */
export interface ReplicaMessageScratch {
  /** @internal */ readonly report: LoadReport__Output;
  /** @internal */ readonly clients: ClientLoad__Output[];
  /** @internal */ readonly message: ReplicaMessage__Output;
}

/** A scratch for {@link decodeReplicaMessageInto}. */
export function newReplicaMessageScratch(): ReplicaMessageScratch {
  const report = newLoadReport();
  return { report, clients: [], message: { report, body: 'report' } };
}

/**
 * As {@link decodeReplicaMessage} (the same values, the same errors), but a
 * LoadReport is decoded into `scratch`'s reused objects: a report costs no
 * allocation but its client id strings. The result (and its `report`) is
 * valid until the next decode into the same scratch: a consumer copies what
 * it keeps (Group.applyReport copies the report into its member's own
 * snapshot). Hello and Detach are fresh objects, as they are kept.
 */
export function decodeReplicaMessageInto(bytes: Buffer, scratch: ReplicaMessageScratch): ReplicaMessage__Output {
  const report = scratch.report;
  if (report.topClients.length > MAX_SCRATCH_TOP_CLIENTS) (report as { topClients: ClientLoad__Output[] }).topClients = [];
  return decode(bytes, scratch);
}

/** The ClientLoad to decode the `i`th top client into: pooled while decoding into a scratch (up to its bound), else fresh. */
function nextClientLoad(i: number): ClientLoad__Output {
  const pool = clientPool;
  if (pool === null || i >= MAX_SCRATCH_TOP_CLIENTS) return newClientLoad();
  let c = pool[i];
  if (c === undefined) {
    c = newClientLoad();
    pool.push(c);
  }
  return c;
}

function decode(bytes: Buffer, scratch: ReplicaMessageScratch | null): ReplicaMessage__Output {
  buf = bytes;
  pos = 0;
  const end = bytes.length;
  const reportInto = scratch === null ? null : scratch.report;
  clientPool = scratch === null ? null : scratch.clients;
  let hello: Hello__Output | undefined;
  let report: LoadReport__Output | undefined;
  let detach: Detach__Output | undefined;
  try {
    while (pos < end) {
      const tag = uint32(end);
      const wire = tag & 7;
      switch (tag >>> 3) {
        case 1:
          if (wire !== WIRE_LENGTH) wrongWireType('ReplicaMessage', 1, 'hello', wire, WIRE_LENGTH);
          hello = decodeHello(nestedEnd(end));
          break;
        case 2:
          if (wire !== WIRE_LENGTH) wrongWireType('ReplicaMessage', 2, 'report', wire, WIRE_LENGTH);
          report = decodeLoadReport(nestedEnd(end), reportInto ?? newLoadReport());
          break;
        case 3:
          if (wire !== WIRE_LENGTH) wrongWireType('ReplicaMessage', 3, 'detach', wire, WIRE_LENGTH);
          detach = decodeDetach(nestedEnd(end));
          break;
        default:
          skipType(end, wire, 0);
      }
    }
  } finally {
    buf = EMPTY; // nothing of the message kept alive by the decoder
    clientPool = null;
  }
  // The common case (one report, nothing else) first: one object of one shape.
  if (report !== undefined && hello === undefined && detach === undefined) return scratch !== null ? scratch.message : { report, body: 'report' };
  // proto-loader (oneofs): every member present is kept; `body` names the last in field order.
  const out: ReplicaMessage__Output = {};
  if (hello !== undefined) {
    out.hello = hello;
    out.body = 'hello';
  }
  if (report !== undefined) {
    out.report = report;
    out.body = 'report';
  }
  if (detach !== undefined) {
    out.detach = detach;
    out.body = 'detach';
  }
  return out;
}

