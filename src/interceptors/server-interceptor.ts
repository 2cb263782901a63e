/**
 * The replica's server interceptor. On every call it
 *   - identifies the caller (rebind client id, or a plain/proxied call),
 *   - answers the call with a forward, before any handler runs, if the
 *     balancer advised moving this client (or the replica is draining, or
 *     the group switched to per-request), and otherwise
 *   - counts the call's load: calls started per client, calls in flight,
 *     latency.
 * A call carrying an affinity token (rebind-affinity) is never forwarded;
 * one that names another replica is refused with FAILED_PRECONDITION.
 * The service implementation never sees a forwarded call; it is the same
 * object the application uses without rebind.
 */
import * as grpc from '@grpc/grpc-js';
import { performance } from 'node:perf_hooks';
import {
  AFFINITY_HEADER,
  BINDING_TRAILER,
  FORWARD_REASON_TRAILER,
  FORWARD_STATUS,
  FORWARD_TRAILER,
  KEY_CHAIN_TRAILER,
  PROXIED_HEADER,
  RETRY_PUSHBACK_TRAILER,
  VOUCH_TRAILER,
  identifyCaller,
  parseAffinityToken,
} from '../common/wire';
import { isPiggyBack, type ForwardDecision, type ForwardTable, type PiggyBack } from '../replica/forward-table';
import { ORCA_SERVICE_PATH } from '../replica/orca';
import type { LoadMeter } from '../replica/load-meter';

/** Builds the Trailers-Only status of a forward. */
export function forwardStatus(decision: ForwardDecision): grpc.StatusObject {
  const metadata = new grpc.Metadata();
  metadata.set(FORWARD_TRAILER, decision.target);
  metadata.set(FORWARD_REASON_TRAILER, decision.reason);
  metadata.set(RETRY_PUSHBACK_TRAILER, '0');
  if (decision.vouch !== undefined) metadata.set(VOUCH_TRAILER, decision.vouch);
  // The chain lets a client that pinned an older key of the balancer's ring check the voucher.
  if (decision.vouch !== undefined && decision.chain !== undefined && decision.chain !== '') metadata.set(KEY_CHAIN_TRAILER, decision.chain);
  return { code: FORWARD_STATUS, details: `rebind: forward to ${decision.target} (${decision.reason})`, metadata };
}

/** Marker so that attach() can tell whether a server already has the interceptor. */
export const REBIND_INTERCEPTOR = Symbol.for('rebind.server-interceptor');

export type RebindServerInterceptor = grpc.ServerInterceptor & { [REBIND_INTERCEPTOR]: true };

/** Answer to a call pinned to another replica (or an earlier incarnation of this one). */
function misroutedStatus(token: string, own: string): { code: grpc.status; details: string } {
  const parsed = parseAffinityToken(token);
  const ownAddress = own.slice(0, own.lastIndexOf('/'));
  const details =
    typeof parsed === 'string'
      ? `rebind: malformed ${AFFINITY_HEADER} header: ${parsed}`
      : parsed.address === ownAddress
        ? `rebind: this call belongs to an earlier incarnation of the replica at ${ownAddress} (replica ${parsed.replicaId}); its state is gone`
        : `rebind: this call is pinned to the replica at ${parsed.address}, not to this one (${ownAddress})`;
  return { code: typeof parsed === 'string' ? grpc.status.INVALID_ARGUMENT : grpc.status.FAILED_PRECONDITION, details };
}

/**
 * Creates the interceptor over a replica's meter and forward table.
 * `affinity` is this replica's own affinity token; `isProxied` tells
 * whether a rebind-proxied header value is the balancer's (the secret it
 * sent this replica in Attached): a client cannot escape forwards by
 * sending the header itself.
 */
export function createServerInterceptor(meter: LoadMeter, forwards: ForwardTable, affinity: string, isProxied: (marker: string) => boolean): RebindServerInterceptor {
  const interceptor: grpc.ServerInterceptor = (method, call) => {
    // The ORCA metrics stream is rebind's own and lasts as long as its client: not load.
    if (method.path === ORCA_SERVICE_PATH) return new grpc.ServerInterceptingCall(call);
    let startedAt = -1;
    /** A binding to send on this call's OK response (a client that understands weighted bindings). */
    let piggy: PiggyBack | null = null;
    const end = (ok: boolean) => {
      if (startedAt >= 0) {
        meter.callEnded(performance.now() - startedAt, ok);
        startedAt = -1;
      }
    };
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const caller = identifyCaller(metadata.get('user-agent')[0] as string | undefined);
            const marker = metadata.get(PROXIED_HEADER)[0];
            const direct = caller.rebindAware && (marker === undefined || !isProxied(String(marker)));
            const pinned = metadata.get(AFFINITY_HEADER)[0];
            if (pinned !== undefined) {
              // Never forwarded: its state lives here (or, if it names another replica, nowhere here).
              if (pinned !== affinity) {
                call.sendStatus(misroutedStatus(String(pinned), affinity));
                return;
              }
            } else if (direct) {
              const decision = forwards.take(caller.clientId, caller.sets);
              if (decision !== null) {
                if (isPiggyBack(decision)) {
                  piggy = decision;
                } else {
                  meter.forwarded();
                  call.sendStatus(forwardStatus(decision));
                  return;
                }
              }
            }
            meter.callStarted(direct ? caller.clientId : null, direct && caller.sets);
            startedAt = performance.now();
            mdNext(metadata);
          },
          onCancel: () => {
            end(false);
            if (piggy !== null) forwards.settle(piggy, false);
            piggy = null;
          },
        });
      },
      sendStatus(status, next) {
        end(status.code === grpc.status.OK);
        // Binding updates are rebind's to make: an application's own never reach the client.
        if (status.metadata) for (const name of [BINDING_TRAILER, VOUCH_TRAILER, KEY_CHAIN_TRAILER]) status.metadata.remove(name);
        if (piggy !== null) {
          const ok = status.code === grpc.status.OK;
          forwards.settle(piggy, ok);
          if (ok) {
            // A re-binding without a failed call: the client applies it to its later calls.
            const metadata = status.metadata ?? new grpc.Metadata();
            metadata.set(BINDING_TRAILER, piggy.binding);
            metadata.set(VOUCH_TRAILER, piggy.vouch);
            if (piggy.chain !== '') metadata.set(KEY_CHAIN_TRAILER, piggy.chain);
            metadata.set(FORWARD_REASON_TRAILER, 'advisory');
            meter.forwarded();
            piggy = null;
            next({ ...status, metadata });
            return;
          }
          piggy = null;
        }
        if (status.code === FORWARD_STATUS) {
          // The application's own ABORTED: make sure no client retries it as a forward.
          const metadata = status.metadata ?? new grpc.Metadata();
          metadata.remove(FORWARD_TRAILER);
          metadata.set(RETRY_PUSHBACK_TRAILER, '-1');
          next({ ...status, metadata });
          return;
        }
        next(status);
      },
    });
  };
  return Object.assign(interceptor, { [REBIND_INTERCEPTOR]: true as const });
}
