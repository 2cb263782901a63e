import * as grpc from '@grpc/grpc-js';
import { clientOptions } from 'rebind';
import { Echo } from './echo-service';

export function connect(balancerAddress: string) {
  // Same generated stub as always; target the balancer and add rebind's channel options.
  return new Echo(balancerAddress, grpc.credentials.createInsecure(), clientOptions());
}
