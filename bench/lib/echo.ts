/**
 * The Echo service (test/fixtures/echo.proto) for the abuse benchmark: its
 * client constructor, a replica implementation, and the few protobuf and
 * gRPC framing bytes the attacker writes by hand (it speaks raw HTTP/2 so
 * that it can set headers and flow-control windows a gRPC library would not).
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import { packageRoot, PROTO_LOADER_OPTIONS } from '../../src/common/proto';

export const ECHO_UNARY_PATH = '/rebind.test.Echo/Unary';
export const ECHO_SERVER_STREAM_PATH = '/rebind.test.Echo/ServerStream';

export interface EchoRequest {
  text?: string;
  count?: number;
}

export interface EchoReply {
  text: string;
  servedBy: string;
  index: number;
}

export interface EchoClient extends grpc.Client {
  Unary(request: EchoRequest, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientUnaryCall;
  ServerStream(request: EchoRequest, options: grpc.CallOptions): grpc.ClientReadableStream<EchoReply>;
}

let loaded: grpc.ServiceClientConstructor | null = null;

/** The Echo service's client constructor (and its .service definition). */
export function echoService(): grpc.ServiceClientConstructor {
  if (loaded === null) {
    const definition = protoLoader.loadSync(path.join(packageRoot(), 'test/fixtures/echo.proto'), PROTO_LOADER_OPTIONS);
    loaded = (grpc.loadPackageDefinition(definition) as unknown as { rebind: { test: { Echo: grpc.ServiceClientConstructor } } }).rebind.test.Echo;
  }
  return loaded;
}

/**
 * Echo for a benchmark replica. ServerStream answers `count` replies, each
 * carrying the request's text (so a caller chooses how large they are), and
 * respects backpressure: a well-behaved replica, so that whatever piles up
 * when a caller does not read piles up in the balancer, not here.
 */
export function echoImplementation(name: string, counter: { served: number }): grpc.UntypedServiceImplementation {
  return {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      counter.served++;
      callback(null, { text: call.request.text ?? '', servedBy: name, index: 0 });
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      counter.served++;
      const count = call.request.count ?? 0;
      const text = call.request.text ?? '';
      let index = 0;
      let done = false;
      call.on('cancelled', () => (done = true));
      call.on('error', () => (done = true));
      const pump = () => {
        while (!done && index < count) {
          if (!call.write({ text, servedBy: name, index: index++ })) {
            call.once('drain', pump);
            return;
          }
        }
        if (!done) {
          done = true;
          call.end();
        }
      };
      pump();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      let n = 0;
      call.on('data', () => n++);
      call.on('end', () => callback(null, { text: '', servedBy: name, index: n }));
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      let index = 0;
      call.on('data', (req: EchoRequest) => call.write({ text: req.text ?? '', servedBy: name, index: index++ }));
      call.on('end', () => call.end());
    },
  };
}

/** A protobuf varint. */
export function varint(value: number): Buffer {
  const bytes: number[] = [];
  let v = value;
  while (v > 0x7f) {
    bytes.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  bytes.push(v);
  return Buffer.from(bytes);
}

/** One gRPC length-prefixed message (uncompressed). */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** An EchoRequest { text, count } encoded by hand. */
export function encodeEchoRequest(text: string, count: number): Buffer {
  const t = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from([0x0a]), varint(t.length), t, Buffer.from([0x10]), varint(count)]);
}

/** An ORCA OrcaLoadReportRequest { report_interval: { nanos } } encoded by hand. */
export function encodeOrcaRequest(intervalMs: number): Buffer {
  const nanos = Buffer.concat([Buffer.from([0x10]), varint(intervalMs * 1_000_000)]);
  return Buffer.concat([Buffer.from([0x0a]), varint(nanos.length), nanos]);
}
