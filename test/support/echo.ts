/**
 * The Echo test service (test/fixtures/echo.proto): four call kinds, each
 * answer naming the replica that served it, request metadata echoed back in
 * response headers and trailers.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import { PROTO_LOADER_OPTIONS } from '../../src/common/proto';
import type { ProtoGrpcType } from '../../src/generated/echo';
import type { EchoClient, EchoHandlers } from '../../src/generated/rebind/test/Echo';

const definition = protoLoader.loadSync(path.join(__dirname, '../fixtures/echo.proto'), PROTO_LOADER_OPTIONS);
export const echoProto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
export const EchoService = echoProto.rebind.test.Echo;
export type { EchoClient };

/**
 * Request metadata keys starting with "x-" are echoed back as response header
 * "echo-<key>" and trailer "trailer-<key>"; the time left until the call's
 * deadline goes into trailer "deadline-left-ms".
 */
function echoMetadata(call: { metadata: grpc.Metadata; getDeadline(): grpc.Deadline }): { headers: grpc.Metadata; trailers: grpc.Metadata } {
  const metadata = call.metadata;
  const headers = new grpc.Metadata();
  const trailers = new grpc.Metadata();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  if (Number.isFinite(deadlineMs)) trailers.set('deadline-left-ms', String(Math.round(deadlineMs - Date.now())));
  for (const key of Object.keys(metadata.getMap())) {
    if (!key.startsWith('x-')) continue;
    for (const value of metadata.get(key)) {
      headers.add(`echo-${key}`, value);
      trailers.add(`trailer-${key}`, value);
    }
  }
  return { headers, trailers };
}

/** Counts calls per method on one replica. */
export interface EchoStats {
  calls: number;
  byMethod: Record<string, number>;
}

/** The Echo implementation; `name` goes into every reply's served_by. */
export function echoImplementation(name: string, stats: EchoStats = { calls: 0, byMethod: {} }): EchoHandlers {
  const count = (method: string) => {
    stats.calls++;
    stats.byMethod[method] = (stats.byMethod[method] ?? 0) + 1;
  };
  const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  return {
    async Unary(call, callback) {
      count('Unary');
      const { headers, trailers } = echoMetadata(call);
      call.sendMetadata(headers);
      if (call.request.delayMs > 0) await wait(call.request.delayMs);
      if (call.request.text === 'fail') {
        callback({ code: grpc.status.FAILED_PRECONDITION, details: 'asked to fail', metadata: trailers });
        return;
      }
      callback(null, { text: call.request.text, servedBy: name, index: 0 }, trailers);
    },
    async ServerStream(call) {
      count('ServerStream');
      const { headers, trailers } = echoMetadata(call);
      call.sendMetadata(headers);
      for (let i = 0; i < call.request.count; i++) {
        if (call.request.delayMs > 0) await wait(call.request.delayMs);
        if (call.cancelled) return;
        call.write({ text: call.request.text, servedBy: name, index: i });
      }
      call.end(trailers);
    },
    ClientStream(call, callback) {
      count('ClientStream');
      const { headers, trailers } = echoMetadata(call);
      call.sendMetadata(headers);
      const texts: string[] = [];
      call.on('data', (req) => texts.push(req.text));
      call.on('end', () => callback(null, { text: texts.join(','), servedBy: name, index: texts.length }, trailers));
    },
    Bidi(call) {
      count('Bidi');
      const { headers, trailers } = echoMetadata(call);
      call.sendMetadata(headers);
      let index = 0;
      call.on('data', (req) => call.write({ text: req.text, servedBy: name, index: index++ }));
      call.on('end', () => call.end(trailers));
    },
  };
}

/** Starts a grpc.Server with the Echo service on 127.0.0.1:0. */
export async function startEchoServer(name: string, implementation = echoImplementation(name)): Promise<{ server: grpc.Server; address: string; implementation: EchoHandlers }> {
  const server = new grpc.Server();
  server.addService(EchoService.service, implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, address: `127.0.0.1:${port}`, implementation };
}
