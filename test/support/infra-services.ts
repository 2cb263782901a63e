/**
 * Handwritten service definitions for tests that need a second service on a
 * replica without a .proto file: a tiny grpc.health.v1.Health (Check always
 * answers SERVING) and a one-method rebind.test.Other. Messages pass through
 * as raw bytes, so no dependency and no code generation is needed.
 */
import * as grpc from '@grpc/grpc-js';

const passThrough = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

function unaryMethod(path: string): grpc.MethodDefinition<Buffer, Buffer> {
  return { path, requestStream: false, responseStream: false, originalName: path.slice(path.lastIndexOf('/') + 1), ...passThrough };
}

/** grpc.health.v1.Health with Check only (Watch is not needed by these tests). */
export const healthService: grpc.ServiceDefinition = { Check: unaryMethod('/grpc.health.v1.Health/Check') };

/** HealthCheckResponse { status: SERVING (1) }, encoded by hand: field 1, varint 1. */
export const HEALTH_SERVING = Buffer.from([0x08, 0x01]);

export const healthImplementation: grpc.UntypedServiceImplementation = {
  Check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, HEALTH_SERVING),
};

/** A second application service, so that a replica of another group serves something of its own. */
export const otherService: grpc.ServiceDefinition = { Ping: unaryMethod('/rebind.test.Other/Ping') };

export const otherImplementation: grpc.UntypedServiceImplementation = {
  Ping: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
};
