/** A small client of the balancer's Admin service, for the CLI and tools. */
import * as grpc from '@grpc/grpc-js';
import { controlProto } from '../common/proto';
import type { AdminClient } from '../generated/rebind/v1/Admin';
import type { GroupStatus__Output } from '../generated/rebind/v1/GroupStatus';
import { tokenMetadata } from '../balancer/auth';

export const ADMIN_DEADLINE_MS = 5000;

export function adminClient(address: string, credentials = grpc.credentials.createInsecure()): AdminClient {
  const Admin = controlProto().rebind.v1.Admin;
  return new Admin(address, credentials) as unknown as AdminClient;
}

/** Turns a failed admin call into a one-line message. */
export function describeError(address: string, err: grpc.ServiceError): string {
  // A balancer that answers UNAVAILABLE because etcd is unreachable (HA) says so itself.
  const fromBalancer = err.code === grpc.status.UNAVAILABLE && err.details.startsWith('etcd is unreachable');
  if (!fromBalancer && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED)) {
    return `cannot reach the balancer's control address ${address}: ${err.details.replace(/\s*Resolution note:\s*$/, '')}`;
  }
  return `${grpc.status[err.code] ?? err.code}: ${err.details}`;
}

type Method = 'ListGroups' | 'SetStrategy' | 'SetGranularity';

/** Calls one Admin method with a deadline; resolves with the reply or rejects with a readable Error. */
export function adminCall<T>(client: AdminClient, address: string, method: Method, request: object, token?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<Method, (req: object, md: grpc.Metadata, opts: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: T) => void) => void>)[method];
    fn.call(client, request, tokenMetadata(token), { deadline: Date.now() + ADMIN_DEADLINE_MS }, (err, reply) => {
      if (err) reject(new Error(describeError(address, err)));
      else resolve(reply!);
    });
  });
}

/** One line per member: address, state, raw and dampened load. */
export function formatGroup(group: GroupStatus__Output): string {
  const head = `group ${group.name}: granularity ${group.granularity}, strategy ${group.strategy} ${group.strategyParamsJson}, metric ${group.metric}, ${group.members.length} member(s)`;
  const rows = group.members.map(
    (m) => `  ${m.memberId.padEnd(6)} ${m.address.padEnd(22)} ${m.state.padEnd(9)} raw ${m.rawLoad.toFixed(1).padStart(9)}  dampened ${m.dampenedLoad.toFixed(1).padStart(9)}  clients ${m.clients}`,
  );
  return [head, ...rows].join('\n');
}
