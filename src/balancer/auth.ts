/**
 * Control-plane authentication: a replica's attachment presents the replica
 * token, admin calls the admin token, as "authorization: Bearer <token>".
 * Checked before any handler runs, in constant time; a refusal is
 * UNAUTHENTICATED (or PERMISSION_DENIED) and counted.
 */
import * as grpc from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'authorization';

/**
 * Whether an authorization header value is "Bearer <token>": 'missing',
 * 'invalid' or 'ok'. Constant time in the token's contents.
 */
export function checkBearer(presented: unknown, expected: Buffer): 'missing' | 'invalid' | 'ok' {
  if (typeof presented !== 'string') return 'missing';
  const got = Buffer.from(presented);
  return got.length === expected.length && timingSafeEqual(got, expected) ? 'ok' : 'invalid';
}

/** The header value a token is presented as. */
export function bearer(token: string): Buffer {
  return Buffer.from(`Bearer ${token}`);
}

/** Who may call what on the control port. */
export interface ControlRoles {
  /** Token for /rebind.v1.Control (attaching, reporting); null: none needed. */
  replicaToken: string | null;
  /** Token for /rebind.v1.Admin; null: reads are open, and changes only from a loopback port. */
  adminToken: string | null;
  /** Whether the control port listens on loopback only (changes without an admin token are refused otherwise). */
  loopbackOnly: boolean;
}

const ADMIN_PREFIX = '/rebind.v1.Admin/';
const CONTROL_PREFIX = '/rebind.v1.Control/';
/** Admin methods that change something (the others only read). */
const ADMIN_CHANGES = new Set([`${ADMIN_PREFIX}SetStrategy`, `${ADMIN_PREFIX}SetGranularity`]);

/**
 * The control port's gate, checked before any handler runs: replicas
 * present the replica token, admins the admin token (a token of one role
 * grants nothing of the other); without an admin token, changes are only
 * taken from a loopback-only port. Refusals are UNAUTHENTICATED (no or
 * wrong token) or PERMISSION_DENIED, and counted.
 */
export function controlAuthInterceptor(roles: ControlRoles, refused: (reason: string, peer: string) => void): grpc.ServerInterceptor {
  const replica = roles.replicaToken === null ? null : bearer(roles.replicaToken);
  const admin = roles.adminToken === null ? null : bearer(roles.adminToken);
  return (method, call) => {
    const path = method.path;
    const role = path.startsWith(ADMIN_PREFIX) ? 'admin' : path.startsWith(CONTROL_PREFIX) ? 'replica' : null;
    const expected = role === 'admin' ? admin : role === 'replica' ? replica : null;
    const openChange = role === 'admin' && admin === null && ADMIN_CHANGES.has(path) && !roles.loopbackOnly;
    if (expected === null && !openChange) return new grpc.ServerInterceptingCall(call);
    return new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            if (openChange) {
              refused('admin_changes_disabled', call.getPeer());
              call.sendStatus({
                code: grpc.status.PERMISSION_DENIED,
                details: 'rebind: changes need security.adminToken when the control port is not on loopback only',
              });
              return;
            }
            const verdict = checkBearer(metadata.get(AUTH_HEADER)[0], expected!);
            if (verdict !== 'ok') {
              refused(verdict === 'missing' ? 'missing_token' : 'bad_token', call.getPeer());
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: `rebind: ${verdict} ${role} token (send "authorization: Bearer <token>")`,
              });
              return;
            }
            mdNext(metadata);
          },
        });
      },
    });
  };
}

/** Call credentials that present a control token (for replicas, the CLI, tools). */
export function tokenMetadata(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined && token !== '') metadata.set(AUTH_HEADER, `Bearer ${token}`);
  return metadata;
}
