/**
 * Control-plane authentication: every call on the control port (a replica's
 * attachment, its reports, every admin call) must present the shared token
 * as "authorization: Bearer <token>". Checked before any handler runs, in
 * constant time; a refusal is UNAUTHENTICATED and counted.
 */
import * as grpc from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';

export const AUTH_HEADER = 'authorization';

export function tokenInterceptor(token: string, refused: (reason: string, peer: string) => void): grpc.ServerInterceptor {
  const expected = Buffer.from(`Bearer ${token}`);
  return (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start(next) {
        next({
          onReceiveMetadata(metadata, mdNext) {
            const presented = metadata.get(AUTH_HEADER)[0];
            const got = typeof presented === 'string' ? Buffer.from(presented) : null;
            if (got === null || got.length !== expected.length || !timingSafeEqual(got, expected)) {
              refused(got === null ? 'missing_token' : 'bad_token', call.getPeer());
              call.sendStatus({
                code: grpc.status.UNAUTHENTICATED,
                details: `rebind: ${got === null ? 'missing' : 'invalid'} control token (send "authorization: Bearer <token>")`,
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
