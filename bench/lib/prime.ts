/**
 * The benchmark workload: "is this integer prime", by naive trial division
 * (every divisor from 2 to sqrt(n)). PRIME is chosen so that one check costs
 * about 75 µs of CPU on this machine (BENCHMARKS.md asks for 50-100 µs);
 * below 2^31 V8 uses integer modulo, above it the cost jumps 8-fold.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import * as path from 'node:path';
import { packageRoot } from '../../src/common/proto';
import { PROXIED_HEADER } from '../../src/common/wire';

export const PRIME = 1_500_000_001;

export function isPrime(n: number): boolean {
  if (n < 2) return false;
  const root = Math.floor(Math.sqrt(n));
  for (let d = 2; d <= root; d++) if (n % d === 0) return false;
  return true;
}

export interface PrimeClient extends grpc.Client {
  IsPrime(request: { number: number }, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, reply?: { prime: boolean; served_by: string }) => void): grpc.ClientUnaryCall;
}

let loaded: grpc.ServiceClientConstructor | null = null;

/** The Prime service's client constructor (and its .service definition). */
export function primeService(): grpc.ServiceClientConstructor {
  if (loaded === null) {
    const definition = protoLoader.loadSync(path.join(packageRoot(), 'proto/bench/v1/prime.proto'), { keepCase: true, longs: Number, defaults: true });
    loaded = (grpc.loadPackageDefinition(definition) as unknown as { bench: { v1: { Prime: grpc.ServiceClientConstructor } } }).bench.v1.Prime;
  }
  return loaded;
}

/**
 * The Prime implementation; counts the calls it served and, in `proxied`,
 * those the balancer relayed (they carry its rebind-proxied header; the
 * others came straight from the client). `slowdown` repeats the work (a
 * slow replica).
 */
export function primeImplementation(name: string, counter: { served: number; proxied?: number; slowdown?: number }): grpc.UntypedServiceImplementation {
  return {
    IsPrime(call: grpc.ServerUnaryCall<{ number: number }, unknown>, callback: grpc.sendUnaryData<unknown>) {
      counter.served++;
      if (counter.proxied !== undefined && call.metadata.get(PROXIED_HEADER).length > 0) counter.proxied++;
      let prime = false;
      for (let i = 0; i < (counter.slowdown ?? 1); i++) prime = isPrime(call.request.number);
      callback(null, { prime, served_by: name });
    },
  };
}
