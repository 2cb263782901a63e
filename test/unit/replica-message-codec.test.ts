/**
 * The hand-written ReplicaMessage decoder (src/balancer/replica-message-codec.ts)
 * against proto-loader's (protobufjs) on random valid messages (fields in any
 * order, repeated, unknown fields and groups between them) and on random,
 * mutated and truncated bytes: the same object, or both refuse. The one
 * difference allowed: a known field with the wrong wire type, which ours
 * refuses with a ReplicaMessageDecodeError naming the field.
 */
import * as fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { controlProto } from '../../src/common/proto';
import { decodeReplicaMessage, decodeReplicaMessageInto, MAX_SCRATCH_TOP_CLIENTS, newReplicaMessageScratch, ReplicaMessageDecodeError } from '../../src/balancer/replica-message-codec';

const RUNS = Number(process.env['REBIND_PROPERTY_RUNS'] ?? 400);
const attach = controlProto().rebind.v1.Control.service.Attach;
const reference = (bytes: Buffer): unknown => attach.requestDeserialize(bytes);
const serialize = (message: object): Buffer => attach.requestSerialize(message as never);

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };
function run(f: () => unknown): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error };
  }
}

const isWireTypeError = (e: unknown) => e instanceof ReplicaMessageDecodeError && /has wire type .* expected/.test(e.message);

/** Same object as proto-loader, or both refuse; ours may refuse alone only for a wrong wire type. */
function expectSame(bytes: Buffer): void {
  const theirs = run(() => reference(bytes));
  const ours = run(() => decodeReplicaMessage(bytes));
  if (ours.ok) {
    expect(theirs, `bytes ${bytes.toString('hex')}`).toEqual(ours);
    // Same keys too (toEqual ignores undefined-valued keys; proto-loader never has any).
    expect(Object.keys(ours.value as object).sort()).toEqual(Object.keys((theirs as { value: object }).value).sort());
  } else if (theirs.ok) {
    expect(isWireTypeError(ours.error), `ours refused ${bytes.toString('hex')} with ${String(ours.error)}; proto-loader gave ${JSON.stringify(theirs.value)}`).toBe(true);
  }
}

// --- A small wire-level encoder, so that tests control field order, repetition and unknown fields.
type Field = { no: number; wire: 0 | 1 | 2 | 3 | 5; bytes: Buffer };
function varint(n: bigint): Buffer {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return Buffer.from(out);
}
function encodeFields(fields: Field[]): Buffer {
  return Buffer.concat(
    fields.map((f) => {
      const tag = varint(BigInt((f.no << 3) | f.wire));
      if (f.wire === 2) return Buffer.concat([tag, varint(BigInt(f.bytes.length)), f.bytes]);
      if (f.wire === 3) return Buffer.concat([tag, f.bytes, varint(BigInt((f.no << 3) | 4))]);
      return Buffer.concat([tag, f.bytes]);
    }),
  );
}
const f64 = (x: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return b;
};

const doubleArb = fc.oneof(fc.double(), fc.constantFrom(0, -0, NaN, Infinity, -Infinity, 1e308));
const u32Arb = fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 32n - 1n }).map(Number), fc.constant(2 ** 32 - 1));
const stringArb = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.constant(''));

/** Unknown fields (numbers not used by the message), groups included. */
function unknownArb(used: number[]): fc.Arbitrary<Field> {
  const no = fc.integer({ min: 1, max: 600 }).filter((n) => !used.includes(n));
  return fc.oneof(
    fc.record({ no, wire: fc.constant(0 as const), bytes: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(varint) }),
    fc.record({ no, wire: fc.constant(1 as const), bytes: fc.uint8Array({ minLength: 8, maxLength: 8 }).map((a) => Buffer.from(a)) }),
    fc.record({ no, wire: fc.constant(2 as const), bytes: fc.uint8Array({ maxLength: 20 }).map((a) => Buffer.from(a)) }),
    fc.record({ no, wire: fc.constant(5 as const), bytes: fc.uint8Array({ minLength: 4, maxLength: 4 }).map((a) => Buffer.from(a)) }),
    fc.record({ no, wire: fc.constant(3 as const), bytes: fc.constant(encodeFields([{ no: 1, wire: 0, bytes: varint(7n) }, { no: 2, wire: 2, bytes: Buffer.from('g') }])) }),
  );
}

/** A message as a shuffled list of known fields (each 0..3 times) with unknown fields between. */
function messageArb(known: fc.Arbitrary<Field>[], used: number[]): fc.Arbitrary<Buffer> {
  return fc
    .tuple(fc.array(fc.oneof(...known), { maxLength: 12 }), fc.array(unknownArb(used), { maxLength: 3 }), fc.array(fc.nat(), { minLength: 3, maxLength: 3 }))
    .map(([fields, unknown, at]) => {
      const all = [...fields];
      unknown.forEach((u, i) => all.splice(at[i]! % (all.length + 1), 0, u));
      return encodeFields(all);
    });
}

const clientLoadArb = messageArb(
  [
    stringArb.map((s) => ({ no: 1, wire: 2 as const, bytes: Buffer.from(s) })),
    doubleArb.map((x) => ({ no: 2, wire: 1 as const, bytes: f64(x) })),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map((v) => ({ no: 3, wire: 0 as const, bytes: varint(v) })),
  ],
  [1, 2, 3],
);
const reportArb = messageArb(
  [
    fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 53n })).map((v) => ({ no: 1, wire: 0 as const, bytes: varint(v) })),
    ...[2, 4, 12, 14].map((no) => fc.oneof(u32Arb.map(BigInt), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })).map((v) => ({ no, wire: 0 as const, bytes: varint(v) }))),
    ...[3, 5, 6, 7, 8, 11].map((no) => doubleArb.map((x) => ({ no, wire: 1 as const, bytes: f64(x) }))),
    ...[9, 13].map((no) => fc.bigInt({ min: 0n, max: 3n }).map((v) => ({ no, wire: 0 as const, bytes: varint(v) }))),
    clientLoadArb.map((bytes) => ({ no: 10, wire: 2 as const, bytes })),
  ],
  [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
);
const methodArb = messageArb(
  [
    stringArb.map((s) => ({ no: 1, wire: 2 as const, bytes: Buffer.from(s) })),
    fc.oneof(fc.integer({ min: 0, max: 6 }).map(BigInt), fc.bigInt({ min: -(2n ** 31n), max: 2n ** 31n })).map((v) => ({ no: 2, wire: 0 as const, bytes: varint(v) })),
  ],
  [1, 2],
);
const helloArb = messageArb(
  [
    u32Arb.map((v) => ({ no: 1, wire: 0 as const, bytes: varint(BigInt(v)) })),
    ...[2, 3, 5, 6].map((no) => stringArb.map((s) => ({ no, wire: 2 as const, bytes: Buffer.from(s) }))),
    methodArb.map((bytes) => ({ no: 4, wire: 2 as const, bytes })),
  ],
  [1, 2, 3, 4, 5, 6],
);
const detachArb = messageArb([stringArb.map((s) => ({ no: 1, wire: 2 as const, bytes: Buffer.from(s) }))], [1]);
const replicaMessageArb = fc.oneof(
  { weight: 4, arbitrary: reportArb.map((b) => encodeFields([{ no: 2, wire: 2, bytes: b }])) },
  { weight: 1, arbitrary: helloArb.map((b) => encodeFields([{ no: 1, wire: 2, bytes: b }])) },
  { weight: 1, arbitrary: detachArb.map((b) => encodeFields([{ no: 3, wire: 2, bytes: b }])) },
  {
    weight: 2,
    arbitrary: messageArb(
      [reportArb.map((bytes) => ({ no: 2, wire: 2 as const, bytes })), helloArb.map((bytes) => ({ no: 1, wire: 2 as const, bytes })), detachArb.map((bytes) => ({ no: 3, wire: 2 as const, bytes }))],
      [1, 2, 3],
    ),
  },
);

/** What replicas send: proto-loader's own encoding of plain objects. */
const objectArb = fc.oneof(
  fc.record({
    report: fc.record({
      seq: fc.oneof(fc.nat(), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String)),
      intervalMs: u32Arb,
      callsPerS: doubleArb,
      inFlight: u32Arb,
      latencyMs: doubleArb,
      eventLoopUtilization: doubleArb,
      cpuCores: doubleArb,
      custom: doubleArb,
      hasCustom: fc.boolean(),
      topClients: fc.array(fc.record({ clientId: stringArb, callsPerS: doubleArb, sets: fc.boolean() }), { maxLength: 8 }),
      clientCount: u32Arb,
      otherCallsPerS: doubleArb,
      forwards: u32Arb,
      draining: fc.boolean(),
    }, { requiredKeys: [] }),
  }),
  fc.record({
    hello: fc.record({
      protocolVersion: u32Arb,
      group: stringArb,
      address: stringArb,
      methods: fc.array(fc.record({ path: stringArb, kind: fc.constantFrom('UNARY', 'SERVER_STREAMING', 'CLIENT_STREAMING', 'BIDI_STREAMING', 'CALL_KIND_UNSPECIFIED') }), { maxLength: 4 }),
      replicaId: stringArb,
      resumeSecret: stringArb,
    }, { requiredKeys: [] }),
  }),
  fc.record({ detach: fc.record({ reason: stringArb }) }),
  fc.constant({}),
);

describe('hand-written ReplicaMessage decoder = proto-loader', () => {
  it('decodes what proto-loader encodes, identically', () => {
    fc.assert(fc.property(objectArb, (message) => {
      const bytes = serialize(message);
      expect(decodeReplicaMessage(bytes)).toEqual(reference(bytes));
    }), { numRuns: RUNS });
  });

  it('valid encodings in any field order, with repeated and unknown fields (and groups): the same object', () => {
    // (protobufjs itself refuses some valid encodings, e.g. a uint32 field sent as a 10-byte varint near the
    // end of its message: then ours must refuse too; every wire type here is right, so no other difference.)
    fc.assert(fc.property(replicaMessageArb, (bytes) => expectSame(bytes)), { numRuns: RUNS });
  });

  it('every truncation of a valid encoding: the same object or both refuse', () => {
    fc.assert(fc.property(replicaMessageArb, fc.nat(), (bytes, cut) => {
      expectSame(bytes.subarray(0, bytes.length === 0 ? 0 : cut % bytes.length));
    }), { numRuns: RUNS });
  });

  it('valid encodings with bytes changed: the same object, both refuse, or ours refuses a wrong wire type', () => {
    fc.assert(fc.property(replicaMessageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 3 }), (bytes, changes) => {
      const mutated = Buffer.from(bytes);
      if (mutated.length === 0) return;
      for (const [at, value] of changes) mutated[at % mutated.length] = value;
      expectSame(mutated);
    }), { numRuns: RUNS * 2 });
  });

  it('random bytes: the same object, both refuse, or ours refuses a wrong wire type', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 64 }), (a) => expectSame(Buffer.from(a))), { numRuns: RUNS * 2 });
  });

  it('a buffer that is a view into a larger one (as grpc-js passes it) reads nothing past its end', () => {
    const report = serialize({ report: { seq: 3, topClients: [{ clientId: 'c', callsPerS: 1 }] } });
    const big = Buffer.concat([Buffer.from([9, 9, 9]), report, Buffer.from([0x10, 0x01, 0xff, 0xff])]);
    const view = big.subarray(3, 3 + report.length);
    expect(decodeReplicaMessage(view)).toEqual(reference(view));
    for (let cut = 0; cut < report.length; cut++) expectSame(big.subarray(3, 3 + cut));
  });

  it('refuses a known field with the wrong wire type, naming it', () => {
    // has_custom (field 9, a bool) sent length-delimited: protobufjs would read the length as the bool.
    const bytes = encodeFields([{ no: 2, wire: 2, bytes: encodeFields([{ no: 1, wire: 0, bytes: varint(1n) }, { no: 9, wire: 2, bytes: Buffer.alloc(0) }]) }]);
    expect(() => decodeReplicaMessage(bytes)).toThrow('rebind.v1.LoadReport field 9 (has_custom) has wire type length-delimited (2); expected varint (0)');
    expect(() => decodeReplicaMessage(encodeFields([{ no: 2, wire: 0, bytes: varint(5n) }]))).toThrow(/ReplicaMessage field 2 \(report\) has wire type varint/);
  });

  it('groups nested past protobufjs\'s recursion limit are refused, as protobufjs refuses them', () => {
    let group: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 102; i++) group = encodeFields([{ no: 50, wire: 3, bytes: group }]);
    expectSame(group);
    expect(() => decodeReplicaMessage(group)).toThrow('maximum nesting depth exceeded');
  });
});

describe('decodeReplicaMessageInto (reused scratch) = decodeReplicaMessage', () => {
  /** One scratch for a whole sequence of messages, as the control port uses it: each result equals a fresh decode. */
  function expectSameSequence(scratch: ReturnType<typeof newReplicaMessageScratch>, messages: Buffer[]): void {
    for (const bytes of messages) {
      const fresh = run(() => decodeReplicaMessage(bytes));
      const reused = run(() => decodeReplicaMessageInto(bytes, scratch));
      if (fresh.ok) {
        expect(reused, `bytes ${bytes.toString('hex')}`).toEqual(fresh);
        expect(Object.keys(reused.ok ? (reused.value as object) : {}).sort()).toEqual(Object.keys(fresh.value as object).sort());
      } else {
        expect(reused.ok, `bytes ${bytes.toString('hex')}`).toBe(false);
        expect(String((reused as { error: unknown }).error)).toBe(String(fresh.error));
      }
    }
  }

  it('valid, truncated and mutated encodings in sequence through one scratch: the same objects, the same errors', () => {
    const mutate = (bytes: Buffer, changes: [number, number][], cut: number) => {
      const m = Buffer.from(bytes.subarray(0, bytes.length === 0 ? 0 : 1 + (cut % bytes.length)));
      if (m.length > 0) for (const [at, value] of changes) m[at % m.length] = value;
      return m;
    };
    const itemArb = fc.oneof(
      { weight: 3, arbitrary: replicaMessageArb },
      { weight: 2, arbitrary: fc.tuple(replicaMessageArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }), fc.nat()).map(([b, c, cut]) => mutate(b, c, cut)) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)) },
    );
    const scratch = newReplicaMessageScratch();
    fc.assert(fc.property(fc.array(itemArb, { minLength: 1, maxLength: 8 }), (messages) => expectSameSequence(scratch, messages)), { numRuns: RUNS });
  });

  it('a report with fewer top clients after one with more: nothing of the earlier one is left', () => {
    const scratch = newReplicaMessageScratch();
    const many = serialize({ report: { seq: 1, callsPerS: 5, draining: true, topClients: [1, 2, 3].map((i) => ({ clientId: `client-${i}`, callsPerS: i, sets: true })) } });
    const few = serialize({ report: { seq: 2, topClients: [{ clientId: 'other', callsPerS: 9 }] } });
    expectSameSequence(scratch, [many, few, many, Buffer.from(few.subarray(0, few.length - 2)), few]);
  });

  it('what a scratch keeps is bounded: a report of 10,000 top clients leaves at most MAX_SCRATCH_TOP_CLIENTS pooled and a small list after', () => {
    const scratch = newReplicaMessageScratch();
    const big = serialize({ report: { seq: 1, topClients: Array.from({ length: 10_000 }, (_, i) => ({ clientId: `c${i}`, callsPerS: 1 })) } });
    const decoded = decodeReplicaMessageInto(big, scratch);
    expect(decoded).toEqual(decodeReplicaMessage(big));
    expect(scratch.clients.length).toBe(MAX_SCRATCH_TOP_CLIENTS);
    const bigList = decoded.report!.topClients;
    const small = serialize({ report: { seq: 2, topClients: [{ clientId: 'x', callsPerS: 1 }] } });
    expect(decodeReplicaMessageInto(small, scratch)).toEqual(decodeReplicaMessage(small));
    // The 10,000-long list was dropped (a list keeps its capacity when truncated), not reused.
    expect(scratch.report.topClients).not.toBe(bigList);
    expect(scratch.clients.length).toBe(MAX_SCRATCH_TOP_CLIENTS);
  });
});
