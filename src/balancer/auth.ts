/**
 * Control-plane authentication: every call on the control port (a replica's
 * attachment, its reports, every admin call) must present the shared token
 * as "authorization: Bearer <token>". Checked before any handler runs, in
 * constant time; a refusal is UNAUTHENTICATED and counted.
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

export function tokenInterceptor(token: string, refused: (reason: string, peer: string) => void): grpc.ServerInterceptor {
  const expected = bearer(token);
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const verdict = checkBearer(metadata.get(AUTH_HEADER)[0], expected);
            if (verdict !== 'ok') {
              refused(verdict === 'missing' ? 'missing_token' : 'bad_token', call.getPeer());
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: `rebind: ${verdict} control token (send "authorization: Bearer <token>")`,
              });
              return;
            }
            mdNext(metadata);
          },
        });
      },
    });
}

/** Call credentials that present a control token (for replicas, the CLI, tools). */
export function tokenMetadata(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined && token !== '') metadata.set(AUTH_HEADER, `Bearer ${token}`);
  return metadata;
}
